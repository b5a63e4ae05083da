//! The console menu, for examiners at the keyboard (no `vestige.run=` on the command line).

use crate::blocks::Protection;
use crate::cmdline::Plan;
use crate::console::Console;
use crate::session::{self, Evidence};
use crate::uevent::Devices;
use std::io::{BufRead, Write};

fn ask(console: &Console, prompt: &str) -> Option<String> {
    print!("{prompt}");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            let l = line.trim().to_string();
            console.child(&format!("{prompt}{l}"));
            Some(l)
        }
    }
}

/// Runs the menu until the examiner powers off or reboots; returns true for reboot.
pub fn run(console: &Console, devices: &Devices, plan: &Plan, evidence: Option<&Evidence>) -> bool {
    let mut case_id = plan.case_id.clone();
    let mut examiner = plan.examiner.clone();
    loop {
        let disks = session::targets(evidence);
        println!("\n=== Vestige appliance ===");
        match evidence {
            Some(e) => println!(
                "evidence medium: /dev/{} ({}), {} free",
                e.partition,
                e.fstype,
                session::free_bytes().map_or("?".to_string(), session::human)
            ),
            None => println!("\x1b[1;31mno evidence medium: acquisition is disabled\x1b[0m"),
        }
        for (i, d) in disks.iter().enumerate() {
            let prot = match devices.get(&d.name) {
                Some(Protection::ReadOnly) => "read-only".to_string(),
                Some(Protection::Unprotected(why)) => format!("\x1b[1;31mWRITABLE ({why})\x1b[0m"),
                None => "unknown".to_string(),
            };
            println!(
                "  [{}] {:<8} {:>10}  {:<24} serial {:<20} {prot}",
                i + 1,
                d.name,
                session::human(d.size_bytes),
                d.model.as_deref().unwrap_or("-"),
                d.serial.as_deref().unwrap_or("-"),
            );
        }
        println!("  a) acquire all   N) acquire disk N   v) verify case   m) view manifests   p) power off   r) reboot");
        let Some(choice) = ask(console, "> ") else {
            // No console input (stdin closed): nothing more can be asked.
            return false;
        };
        match choice.as_str() {
            "p" => return false,
            "r" => return true,
            "v" | "m" | "a" => {}
            n if n.parse::<usize>().is_ok() => {}
            _ => continue,
        }
        let Some(ev) = evidence else {
            console.warn("no evidence medium: attach one and reboot");
            continue;
        };
        if case_id.is_none() {
            case_id = ask(console, "case id: ").filter(|s| !s.is_empty());
        }
        if examiner.is_none() {
            examiner = ask(console, "examiner: ").filter(|s| !s.is_empty());
        }
        let (Some(cid), Some(exam)) = (case_id.clone(), examiner.clone()) else {
            continue;
        };
        let case = match session::open_case(console, &cid, &exam) {
            Ok(c) => c,
            Err(e) => {
                console.warn(&e);
                case_id = None;
                continue;
            }
        };
        let _ = ev;
        match choice.as_str() {
            "v" => {
                session::vestige(console, &["verify", &case.to_string_lossy()]);
            }
            "m" => {
                for item in std::fs::read_dir(&case)
                    .map(|d| d.flatten().collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    if let Ok(m) = std::fs::read_to_string(item.path().join("manifest.json")) {
                        println!("--- {} ---\n{m}", item.path().display());
                    }
                }
            }
            c => {
                let chosen: Vec<_> = match c.parse::<usize>() {
                    Ok(n) => disks.get(n.wrapping_sub(1)).cloned().into_iter().collect(),
                    Err(_) => disks.clone(),
                };
                // Each unprotected disk needs its own confirmation, named, in full.
                let mut confirmed = Vec::new();
                for d in &chosen {
                    if let Some(Protection::Unprotected(why)) = devices.get(&d.name) {
                        let prompt = format!(
                            "{} is NOT write-protected ({why}). Type YES only if the hypervisor attaches it read-only: ",
                            d.name
                        );
                        if ask(console, &prompt).is_some_and(|a| a == "YES") {
                            confirmed.push(d.name.clone());
                        }
                    }
                }
                // In the menu an interrupted acquisition is always resumed: the CLI
                // re-verifies it and refuses another disk.
                let opts = session::AcquireOptions {
                    resume: true,
                    ..plan.acquire.clone()
                };
                let outcomes =
                    session::acquire(console, devices, &case, &chosen, &confirmed, &opts);
                console.log(&outcomes.summary());
            }
        }
        session::save_console(console, &case);
    }
}
