//! Findings: what the rules flag for the examiner, each pointing at its evidence.
//!
//! A finding is a lead, not a verdict: its `description` says what was seen and why it
//! matters, and `evidence` says where to look so the examiner can confirm it with another
//! tool. Rule ids are stable (`linux.uid0_account`, `auth.bruteforce_then_success` …):
//! reports and tests refer to them.

use crate::event::{Evidence, Timestamp};
use serde::Serialize;

/// How urgently the examiner should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing (an installed remote-access package, a user crontab).
    Info,
    /// Unusual, needs a look (a binary in a temp directory).
    Low,
    /// Typical of compromise (persistence from /tmp, an attacker key).
    Medium,
    /// Strongly indicates compromise or anti-forensics (second uid-0 account, log
    /// cleared, brute force followed by success).
    High,
}

/// One flagged observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable rule id, `family.what` (`linux.uid0_account`).
    pub rule: String,
    /// How urgent.
    pub severity: Severity,
    /// A short title, display-safe.
    pub title: String,
    /// What was seen and why it matters, display-safe.
    pub description: String,
    /// When it happened, if known (RFC 3339 in JSON).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::event::ser_opt_time"
    )]
    pub time: Option<Timestamp>,
    /// Where to look (at least one).
    pub evidence: Vec<Evidence>,
}

impl Finding {
    /// A finding at no particular time.
    #[must_use]
    pub fn new(
        rule: &str,
        severity: Severity,
        title: String,
        description: String,
        evidence: Vec<Evidence>,
    ) -> Self {
        Self {
            rule: rule.to_string(),
            severity,
            title,
            description,
            time: None,
            evidence,
        }
    }

    /// The same finding, dated.
    #[must_use]
    pub fn at(mut self, time: Timestamp) -> Self {
        self.time = Some(time);
        self
    }
}
