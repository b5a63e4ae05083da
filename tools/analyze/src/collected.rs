//! What one artifact collector hands back: events for the timeline, findings for the
//! report, and the problems it met (a file it could not parse, a record it skipped), so
//! that nothing is silently left out.

use crate::event::Event;
use crate::findings::Finding;
use serde::Serialize;
use std::fmt::Display;

/// Events, findings and problems of one or more collectors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Collected {
    /// For the timeline.
    pub events: Vec<Event>,
    /// For the report.
    pub findings: Vec<Finding>,
    /// What could not be read or parsed, each naming the file and offset/line.
    pub problems: Vec<String>,
}

impl Collected {
    /// Records a problem.
    pub fn problem(&mut self, what: impl Display) {
        self.problems.push(what.to_string());
    }

    /// Takes everything `other` collected.
    pub fn absorb(&mut self, other: Collected) {
        self.events.extend(other.events);
        self.findings.extend(other.findings);
        self.problems.extend(other.problems);
    }
}
