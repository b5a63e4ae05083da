//! `vestige case init`.

use crate::exit::Exit;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use vestige_evidence::custody::{now_utc_rfc3339, Case, CaseInfo};

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
            let info = CaseInfo {
                format: String::new(),
                case_id: a.case_id.clone(),
                examiner: a.examiner.clone(),
                agency: a.agency.clone(),
                notes: a.notes.clone(),
                created_utc: now_utc_rfc3339(),
                tool: String::new(),
            };
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
