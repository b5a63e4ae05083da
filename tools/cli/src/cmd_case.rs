//! `vestige case init`.

use crate::exit::Exit;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use vestige_evidence::custody::{Case, CaseInfo};

#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// Create a case directory with case.json and the custody log.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The case directory (created; must be empty if it exists).
    pub dir: PathBuf,
    /// The case identifier.
    #[arg(long)]
    pub case_id: String,
    /// The examiner opening the case.
    #[arg(long)]
    pub examiner: String,
    /// The examiner's agency.
    #[arg(long)]
    pub agency: Option<String>,
    /// Notes.
    #[arg(long)]
    pub notes: Option<String>,
}

pub fn tool_string() -> String {
    format!("vestige {}", env!("CARGO_PKG_VERSION"))
}

pub fn run(cmd: CaseCommand) -> Result<Exit> {
    match cmd {
        CaseCommand::Init(a) => {
            let info = CaseInfo::new(&a.case_id, &a.examiner, a.agency.clone(), a.notes.clone());
            let case = Case::init(&a.dir, info, &tool_string())
                .with_context(|| format!("creating case {}", a.dir.display()))?;
            eprintln!(
                "case {} created in {}",
                case.info().case_id,
                case.dir().display()
            );
            Ok(Exit::Ok)
        }
    }
}
