//! Writing an analysis into the case: `CASE/report/` (or `report-2`, `report-3` … when
//! an earlier report is there: a report once written is never replaced) holding
//! report.html, report.json, findings.json, timeline.jsonl, timeline.csv and
//! case-uco.jsonld; then one custody entry naming every file with its SHA-256.

use crate::case::Analysis;
use crate::event::utc_text;
use crate::report::html;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use vestige_evidence::custody::{Case, NewEntry};

/// The files of a report, in the order written.
pub const REPORT_FILES: [&str; 6] = [
    "report.html",
    "report.json",
    "findings.json",
    "timeline.jsonl",
    "timeline.csv",
    "case-uco.jsonld",
];

/// The first of `CASE/report`, `CASE/report-2` … that does not exist.
#[must_use]
pub fn next_report_dir(case_dir: &Path) -> PathBuf {
    let first = case_dir.join("report");
    if !first.exists() {
        return first;
    }
    (2u32..)
        .map(|n| case_dir.join(format!("report-{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Creates `path` (never replacing a file), writes through `f`, returns its SHA-256.
fn write_new(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> anyhow::Result<String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut w = HashingWriter {
        inner: std::io::BufWriter::new(file),
        hash: Sha256::new(),
    };
    f(&mut w).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    w.inner.flush()?;
    w.inner.get_ref().sync_all()?;
    Ok(hex::encode(w.hash.finalize()))
}

struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the report of `a` into a new directory of the case in `case_dir` and logs it
/// in the custody chain. Returns the directory and (file, SHA-256) of each file.
///
/// # Errors
/// A file cannot be created or written, or the custody log refuses the entry.
pub fn write_report(
    case_dir: &Path,
    a: &Analysis,
) -> anyhow::Result<(PathBuf, Vec<(String, String)>)> {
    let dir = next_report_dir(case_dir);
    std::fs::create_dir(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let mut hashes = Vec::new();
    let r = &a.report;
    let mut put =
        |name: &str, f: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| -> anyhow::Result<()> {
            let h = write_new(&dir.join(name), f)?;
            hashes.push((name.to_string(), h));
            Ok(())
        };
    put("report.html", &|w| w.write_all(html(r).as_bytes()))?;
    put("report.json", &|w| {
        serde_json::to_writer_pretty(&mut *w, r)?;
        w.write_all(b"\n")
    })?;
    put("findings.json", &|w| {
        serde_json::to_writer_pretty(&mut *w, &r.findings)?;
        w.write_all(b"\n")
    })?;
    put("timeline.jsonl", &|w| {
        crate::timeline::write_jsonl(&a.events, w)
    })?;
    put("timeline.csv", &|w| {
        crate::timeline::write_csv(&a.events, w)
    })?;
    put("case-uco.jsonld", &|w| {
        serde_json::to_writer_pretty(&mut *w, &uco(a))?;
        w.write_all(b"\n")
    })?;
    let case = Case::open(case_dir)?;
    let mut details = BTreeMap::new();
    details.insert("report".to_string(), dir.display().to_string());
    details.insert("findings".to_string(), r.findings.len().to_string());
    details.insert("timeline_events".to_string(), a.events.len().to_string());
    details.insert("problems".to_string(), r.problems.len().to_string());
    case.append(
        NewEntry {
            examiner: case.info().examiner.clone(),
            action: "analyze".to_string(),
            item: None,
            hashes: hashes.iter().map(|(n, h)| (n.clone(), h.clone())).collect(),
            details,
        },
        &format!("vestige {}", env!("CARGO_PKG_VERSION")),
    )?;
    Ok((dir, hashes))
}

fn hash_facet(id: String, algorithm: &str, hex: &str) -> Value {
    json!({
        "@id": id,
        "@type": "uco-types:Hash",
        "uco-types:hashMethod": {"@type": "xsd:string", "@value": algorithm},
        "uco-types:hashValue": {"@type": "xsd:hexBinary", "@value": hex}
    })
}

/// A node id `kb:<kind>-<UUID>`, the UUID (version 5 layout) derived from the case, the
/// kind and the name: the same case gives the same ids, and they end in a UUID as the
/// CASE validator asks.
fn node_id(case_id: &str, kind: &str, name: &str) -> String {
    let h = Sha256::digest(format!("{case_id}/{kind}/{name}").as_bytes());
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(h.iter()) {
        *d = *s;
    }
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    let part = |a: usize, z: usize| x.get(a..z).unwrap_or_default();
    format!(
        "kb:{kind}-{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// The case in CASE/UCO JSON-LD (ontology 1.x): the investigation, the examiner, the
/// tool, each evidence item as an observable with its size and hashes and a provenance
/// record, each custody entry as an investigative action, and the findings as
/// annotations on the items. Lab systems import it; nothing in it is needed to read
/// the report.
#[must_use]
pub fn uco(a: &Analysis) -> Value {
    let r = &a.report;
    let id = |kind: &str, name: &str| node_id(&r.case_id, kind, name);
    let examiner = id("identity", &r.examiner);
    let tool = id("tool", "vestige");
    let mut graph = vec![
        json!({"@id": examiner, "@type": "uco-identity:Identity", "uco-core:name": r.examiner}),
        json!({"@id": tool, "@type": "uco-tool:Tool", "uco-core:name": "vestige",
               "uco-tool:version": env!("CARGO_PKG_VERSION"), "uco-core:description": r.tool}),
    ];
    let mut objects = vec![json!({"@id": examiner}), json!({"@id": tool})];
    for i in &r.items {
        let item = id("item", &i.name);
        let mut facet = json!({"@id": id("facet", &i.name), "@type": "uco-observable:ContentDataFacet",
                               "uco-observable:sizeInBytes": {"@type": "xsd:integer", "@value": i.size_bytes.to_string()}});
        let hashes: Vec<Value> = i
            .hashes
            .iter()
            .map(|(k, v)| {
                hash_facet(
                    id("hash", &format!("{}/{k}", i.name)),
                    &k.replace('-', ""),
                    v,
                )
            })
            .collect();
        if let Some(o) = facet.as_object_mut() {
            o.insert("uco-observable:hash".into(), Value::Array(hashes));
        }
        graph.push(json!({"@id": item, "@type": "uco-observable:ObservableObject",
                          "uco-core:name": i.name, "uco-core:description": format!("{} item: {}", i.kind, i.source),
                          "uco-core:hasFacet": [facet]}));
        let prov = id("provenance", &i.name);
        graph.push(json!({"@id": prov, "@type": "case-investigation:ProvenanceRecord",
                          "case-investigation:exhibitNumber": i.name,
                          "uco-core:description": format!("{}; {}; {}", i.status, i.verification, i.signature),
                          "uco-core:object": [{"@id": item}]}));
        objects.push(json!({"@id": item}));
        objects.push(json!({"@id": prov}));
    }
    for e in &r.custody.entries {
        let seq = e.get("seq").map(Value::to_string).unwrap_or_default();
        let act = id("action", &seq);
        let mut action = json!({"@id": act, "@type": "case-investigation:InvestigativeAction",
            "uco-core:name": e.get("action").cloned().unwrap_or(Value::Null),
            "uco-action:startTime": {"@type": "xsd:dateTime", "@value": e.get("time_utc").cloned().unwrap_or(Value::Null)},
            "uco-action:performer": {"@id": examiner},
            "uco-action:instrument": {"@id": tool}});
        if let (Some(o), Some(Value::String(item))) = (action.as_object_mut(), e.get("item")) {
            o.insert(
                "uco-action:object".into(),
                json!([{"@id": id("item", item)}]),
            );
        }
        objects.push(json!({"@id": act}));
        graph.push(action);
    }
    for (n, f) in r.findings.iter().enumerate() {
        let note = id("finding", &n.to_string());
        let mut ann = json!({"@id": note, "@type": "uco-core:Annotation",
            "uco-core:name": f.rule,
            "uco-core:statement": format!("[{:?}] {}: {}", f.severity, f.title, f.description),
            "uco-core:object": r.items.iter().map(|i| json!({"@id": id("item", &i.name)})).collect::<Vec<_>>()});
        if let (Some(o), Some(t)) = (ann.as_object_mut(), f.time) {
            o.insert(
                "uco-core:objectCreatedTime".into(),
                json!({"@type": "xsd:dateTime", "@value": utc_text(t)}),
            );
        }
        objects.push(json!({"@id": note}));
        graph.push(ann);
    }
    graph.insert(
        0,
        json!({"@id": id("investigation", &r.case_id), "@type": "case-investigation:Investigation",
               "uco-core:name": r.case_id, "uco-core:description": r.notes.clone().unwrap_or_default(),
               "uco-core:object": objects}),
    );
    json!({
        "@context": {
            "kb": "http://example.org/kb/",
            "case-investigation": "https://ontology.caseontology.org/case/investigation/",
            "uco-action": "https://ontology.unifiedcyberontology.org/uco/action/",
            "uco-core": "https://ontology.unifiedcyberontology.org/uco/core/",
            "uco-identity": "https://ontology.unifiedcyberontology.org/uco/identity/",
            "uco-observable": "https://ontology.unifiedcyberontology.org/uco/observable/",
            "uco-tool": "https://ontology.unifiedcyberontology.org/uco/tool/",
            "uco-types": "https://ontology.unifiedcyberontology.org/uco/types/",
            "uco-vocabulary": "https://ontology.unifiedcyberontology.org/uco/vocabulary/",
            "xsd": "http://www.w3.org/2001/XMLSchema#"
        },
        "@graph": graph
    })
}
