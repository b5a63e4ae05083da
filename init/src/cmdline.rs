//! The kernel command line: `vestige.*` parameters script unattended runs.
//!
//! The kernel hands PID 1 the line in /proc/cmdline with any double quotes kept, so
//! `vestige.examiner="Jane Doe"` arrives quoted; quotes group words and are removed here.

use std::collections::BTreeMap;

/// Splits a command line into words, honouring double quotes.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// The `vestige.*` parameters (key without the prefix → value; a bare key maps to "1").
pub fn vestige_params(line: &str) -> BTreeMap<String, String> {
    words(line)
        .into_iter()
        .filter_map(|w| {
            let rest = w.strip_prefix("vestige.")?;
            let (k, v) = rest.split_once('=').unwrap_or((rest, "1"));
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// A comma-separated list of device names, empty entries dropped.
pub fn name_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `vestige.run=acquire` → unattended acquisition; anything else → the console menu.
    pub unattended: bool,
    /// `vestige.targets=all` (None) or a comma-separated list of device names.
    pub targets: Option<Vec<String>>,
    /// `vestige.case=` — the case id (and its directory name on the evidence medium).
    pub case_id: Option<String>,
    /// `vestige.examiner=`.
    pub examiner: Option<String>,
    /// `vestige.poweroff=0` keeps the console menu after an unattended run.
    pub power_off_after: bool,
    /// `vestige.wait=SECONDS`: wait this long after boot for late disks (USB enumerates
    /// slowly; a responder may hot-plug the target) before an unattended run.
    pub wait_seconds: u64,
    /// `vestige.hypervisor_ro=NAME[,NAME…]`: the examiner states that these disks are attached
    /// read-only by the hypervisor, so an unattended run may acquire them even when the
    /// guest's write-block (BLKROSET) failed. The statement is recorded in each manifest.
    pub hypervisor_read_only: Vec<String>,
    /// `vestige.resume`, `vestige.sync_every=MIB`, `vestige.space_check=0`,
    /// `vestige.format=e01`: see
    /// [`crate::session::AcquireOptions`].
    pub acquire: crate::session::AcquireOptions,
}

impl Plan {
    /// Reads the plan from the parameters.
    pub fn from_params(p: &BTreeMap<String, String>) -> Self {
        let targets = p
            .get("targets")
            .filter(|t| t.as_str() != "all")
            .map(|t| name_list(t));
        Plan {
            unattended: p.get("run").is_some_and(|r| r == "acquire"),
            targets,
            case_id: p.get("case").cloned(),
            examiner: p.get("examiner").cloned(),
            power_off_after: p.get("poweroff").is_none_or(|v| v != "0"),
            wait_seconds: p
                .get("wait")
                .and_then(|w| w.parse().ok())
                .unwrap_or(0)
                .min(3600),
            hypervisor_read_only: p
                .get("hypervisor_ro")
                .map(|v| name_list(v))
                .unwrap_or_default(),
            acquire: crate::session::AcquireOptions {
                resume: p.get("resume").is_some_and(|v| v != "0"),
                sync_every_mib: p
                    .get("sync_every")
                    .and_then(|v| v.parse().ok())
                    .filter(|&m: &u64| (1..=1 << 20).contains(&m)),
                skip_space_check: p.get("space_check").is_some_and(|v| v == "0"),
                e01: p
                    .get("format")
                    .is_some_and(|v| v.eq_ignore_ascii_case("e01")),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_and_bare_keys() {
        let p = vestige_params(
            "BOOT_IMAGE=/vmlinuz console=ttyS0 vestige.run=acquire vestige.examiner=\"Jane Q. Doe\" vestige.debug quiet",
        );
        assert_eq!(p["run"], "acquire");
        assert_eq!(p["examiner"], "Jane Q. Doe");
        assert_eq!(p["debug"], "1");
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn plan_defaults_to_the_menu_and_all_targets() {
        let plan = Plan::from_params(&vestige_params("console=ttyS0"));
        assert!(!plan.unattended && plan.targets.is_none() && plan.power_off_after);
        let plan = Plan::from_params(&vestige_params(
            "vestige.run=acquire vestige.targets=vda,nvme0n1 vestige.poweroff=0",
        ));
        assert!(plan.unattended && !plan.power_off_after);
        assert_eq!(plan.targets.unwrap(), vec!["vda", "nvme0n1"]);
        assert_eq!(plan.wait_seconds, 0);
        let plan = Plan::from_params(&vestige_params("vestige.wait=20"));
        assert_eq!(plan.wait_seconds, 20);
        let plan = Plan::from_params(&vestige_params("vestige.wait=99999999 vestige.wait=x"));
        assert_eq!(plan.wait_seconds, 0);
        assert!(plan.hypervisor_read_only.is_empty());
        let plan = Plan::from_params(&vestige_params("vestige.hypervisor_ro=sda,,vdb"));
        assert_eq!(plan.hypervisor_read_only, vec!["sda", "vdb"]);
        assert!(!plan.acquire.resume && !plan.acquire.skip_space_check);
        assert_eq!(plan.acquire.sync_every_mib, None);
        let plan = Plan::from_params(&vestige_params(
            "vestige.resume vestige.sync_every=16 vestige.space_check=0",
        ));
        assert!(plan.acquire.resume && plan.acquire.skip_space_check);
        assert!(!plan.acquire.e01);
        assert!(
            Plan::from_params(&vestige_params("vestige.format=e01"))
                .acquire
                .e01
        );
        assert_eq!(plan.acquire.sync_every_mib, Some(16));
        let plan = Plan::from_params(&vestige_params("vestige.resume=0 vestige.sync_every=0"));
        assert!(!plan.acquire.resume);
        assert_eq!(plan.acquire.sync_every_mib, None);
    }
}
