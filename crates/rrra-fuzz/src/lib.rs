//! A fuzz harness on stable Rust for every input reader and the pipeline parser.
//!
//! [`TARGETS`] is a table: a target names the file its input is written as and the
//! function that reads it; adding a reader is one line. [`mutate`] derives inputs from
//! seeds (byte and bit flips, truncation, deletion, insertion of format tokens, splices of
//! another seed, line duplication, huge lines, deep nesting). [`exec`] runs one input and
//! judges it ([`Verdict`]): a reader must accept it or reject it with an error that names
//! the file and the line (or record), and must never panic. The campaign binary
//! (`cargo xtask fuzz`) adds the checks a process needs: a time limit per input and a cap
//! on allocation. The test suite replays the committed seeds and found crashers
//! ([`replay`]) plus a short deterministic mutation run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use rrra_common::Error;
use rrra_ingest::{
    DocFields, IdIndex, PairFields, QrelFields, QueryFields, QueryIds, SgmlTags, SmartQrels, Table,
    TableFormat, TextEncoding, TopicField,
};

/// What one input did to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Read without error: this many records.
    Accepted(u64),
    /// Rejected with an error naming the file and the line or record.
    Rejected(String),
    /// Rejected with an error that does not say where (a finding).
    Unlocated(String),
    /// The reader panicked (a finding): message and location.
    Panicked(String),
}

impl Verdict {
    /// Whether this verdict is a defect of the reader.
    pub fn is_finding(&self) -> bool {
        matches!(self, Verdict::Unlocated(_) | Verdict::Panicked(_))
    }

    /// A short class used to tell findings (and, for the campaign's corpus, behaviours)
    /// apart: the verdict kind and its message with digits and quoted parts removed.
    pub fn signature(&self) -> String {
        let (kind, text) = match self {
            Verdict::Accepted(n) => return format!("ok:{}", (*n).min(8)),
            Verdict::Rejected(m) => ("rejected", m),
            Verdict::Unlocated(m) => ("unlocated", m),
            Verdict::Panicked(m) => ("panic", m),
        };
        // Past the file name, which the runs vary.
        let text = text
            .split_once(": ")
            .map_or(text.as_str(), |(_, rest)| rest);
        let mut out = String::new();
        let mut quoted = false;
        for c in text.chars() {
            match c {
                '"' => quoted = !quoted,
                _ if quoted || c.is_ascii_digit() => {}
                _ => out.push(c),
            }
            if out.len() >= 60 {
                break;
            }
        }
        format!("{kind}:{out}")
    }
}

/// A reader under test.
pub struct Target {
    pub name: &'static str,
    /// The name the input is written under (some readers look at it).
    pub file_name: &'static str,
    /// Reads the file and judges the result with [`judge`] (or its own check).
    pub read: fn(&Path) -> Verdict,
}

/// Judges a reader's result: records read, or an error that must name `path` and a line.
pub fn judge(path: &Path, result: rrra_common::Result<u64>) -> Verdict {
    match result {
        Ok(n) => Verdict::Accepted(n),
        Err(e) => {
            let message = e.to_string();
            let names_file = message.starts_with(&path.display().to_string());
            let located = match &e {
                Error::Input { line: Some(_), .. } => true,
                // A whole-file condition, or a parser's own "line L column C".
                Error::Input {
                    line: None,
                    message,
                    ..
                } => message.starts_with("empty file") || names_a_line(message),
                _ => false,
            };
            if names_file && located {
                Verdict::Rejected(message)
            } else {
                Verdict::Unlocated(message)
            }
        }
    }
}

/// Whether `text` says `line N` for some number N.
fn names_a_line(text: &str) -> bool {
    text.match_indices("line ").any(|(at, m)| {
        text[at + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// A sink that only counts, so a target measures the reader alone.
fn discard<T>(_: T) -> rrra_common::Result<()> {
    Ok(())
}

/// Every target. Add a reader with one line.
#[rustfmt::skip]
pub const TARGETS: &[Target] = &[
    Target { name: "beir-corpus", file_name: "corpus.jsonl", read: |p| judge(p, rrra_ingest::read_beir_corpus(p, Some(&mut IdIndex::new()), discard)) },
    Target { name: "beir-queries", file_name: "queries.jsonl", read: |p| judge(p, rrra_ingest::read_beir_queries(p, Some(&mut IdIndex::new()), discard)) },
    Target { name: "msmarco-collection", file_name: "collection.tsv", read: |p| judge(p, rrra_ingest::read_msmarco_collection(p, Some(&mut IdIndex::new()), discard)) },
    Target { name: "msmarco-queries", file_name: "queries.tsv", read: |p| judge(p, rrra_ingest::read_msmarco_queries(p, Some(&mut IdIndex::new()), discard)) },
    Target { name: "qrels", file_name: "qrels.tsv", read: |p| judge(p, rrra_ingest::read_qrels(p, None, discard)) },
    Target { name: "trec-run", file_name: "run.txt", read: |p| judge(p, rrra_ingest::read_trec_run(p, discard)) },
    Target { name: "dpr-biencoder", file_name: "train.json", read: |p| judge(p, rrra_ingest::read_dpr_biencoder(p, discard)) },
    Target { name: "dpr-qa", file_name: "test.qa.tsv", read: |p| judge(p, rrra_ingest::read_dpr_qa_tsv(p, discard)) },
    Target { name: "smart-corpus", file_name: "docs.all", read: |p| judge(p, rrra_ingest::read_smart_corpus(p, "", Some(&mut IdIndex::new()), discard)) },
    Target { name: "smart-queries", file_name: "queries.qry", read: |p| judge(p, rrra_ingest::read_smart_queries(p, QueryIds::Field, Some(&mut IdIndex::new()), discard)) },
    Target { name: "smart-qrels", file_name: "qrels.rel", read: |p| judge(p, rrra_ingest::read_smart_qrels(p, SmartQrels::Auto, None, None, discard)) },
    Target { name: "trec-sgml-docs", file_name: "docs.sgml", read: |p| judge(p, rrra_ingest::read_trec_docs(p, &SgmlTags::default(), TextEncoding::Utf8, Some(&mut IdIndex::new()), discard)) },
    Target { name: "trec-topics", file_name: "topics.txt", read: |p| judge(p, rrra_ingest::read_trec_topics(p, &[TopicField::Title, TopicField::Desc], Some(&mut IdIndex::new()), discard)) },
    Target { name: "psgs-w100", file_name: "psgs_w100.tsv", read: |p| judge(p, rrra_ingest::read_psgs_w100(p, Some(&mut IdIndex::new()), discard)) },
    Target { name: "mapped-jsonl-corpus", file_name: "corpus.jsonl", read: |p| judge(p, rrra_ingest::read_mapped_corpus(p, table(TableFormat::Jsonl), &DocFields::default(), Some(&mut IdIndex::new()), discard)) },
    Target { name: "mapped-csv-queries", file_name: "queries.csv", read: |p| judge(p, rrra_ingest::read_mapped_queries(p, table(TableFormat::Csv), &QueryFields::default(), Some(&mut IdIndex::new()), discard)) },
    Target { name: "mapped-tsv-qrels", file_name: "qrels.tsv", read: |p| judge(p, rrra_ingest::read_mapped_qrels(p, table(TableFormat::Tsv), &QrelFields::default(), None, discard)) },
    Target { name: "pairs-jsonl", file_name: "pairs.jsonl", read: |p| judge(p, rrra_ingest::read_pairs(p, table(TableFormat::Jsonl), &PairFields { negative: Some("neg".into()), ..PairFields::default() }, discard).map(|pairs| pairs.records)) },
    Target { name: "pipeline", file_name: "pipeline.yaml", read: read_pipeline },
];

/// A mapped table of `format` with a header line (CSV, TSV).
fn table(format: TableFormat) -> Table {
    Table {
        format,
        header: true,
    }
}

/// The pipeline parser and validator: errors must name the file and a line.
fn read_pipeline(path: &Path) -> Verdict {
    match rrra_runner::Pipeline::load(path) {
        Ok(p) => Verdict::Accepted(p.stages.len() as u64),
        Err(e) if e.file == path && (e.line.is_some() || names_a_line(&e.message)) => {
            Verdict::Rejected(e.to_string())
        }
        Err(e) => Verdict::Unlocated(e.to_string()),
    }
}

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Writes `input` as the target's file in `dir` and runs the target on it, catching
/// panics.
pub fn exec(target: &Target, dir: &Path, input: &[u8]) -> std::io::Result<Verdict> {
    let path = dir.join(target.file_name);
    std::fs::write(&path, input)?;
    Ok(run_file(target, &path))
}

/// Runs the target on an existing file, catching panics.
pub fn run_file(target: &Target, path: &Path) -> Verdict {
    match catch_unwind(AssertUnwindSafe(|| (target.read)(path))) {
        Ok(v) => v,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            Verdict::Panicked(format!("{}: panicked: {message}", path.display()))
        }
    }
}

/// The crate's folder (seeds and crashers live there).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed inputs of `target` under `folder` (`seeds` or `crashers`), sorted by name.
pub fn inputs(folder: &Path, target: &Target) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let dir = folder.join(target.name);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    for e in entries {
        let path = e?.path();
        if path.is_file() {
            let bytes = std::fs::read(&path)?;
            out.push((path, bytes));
        }
    }
    out.sort();
    Ok(out)
}

/// A small, fast, seedable generator (SplitMix64): the harness needs no crate for it.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Byte strings that mean something to one of the formats.
const TOKENS: &[&[u8]] = &[
    b"\t",
    b"\n",
    b"\r\n",
    b"\r",
    b" ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"0",
    b"-1",
    b"1e999",
    b"-0",
    b"NaN",
    b"inf",
    b"18446744073709551616",
    b"null",
    b"true",
    b"\"_id\"",
    b"\"text\"",
    b"\"title\"",
    b"\"question\"",
    b"\"answers\"",
    b"\"positive_ctxs\"",
    b"\"passage_id\"",
    b".I ",
    b".T\n",
    b".W\n",
    b".A\n",
    b".X\n",
    b"<DOC>",
    b"</DOC>",
    b"<DOCNO>",
    b"</DOCNO>",
    b"query-id\tcorpus-id\tscore\n",
    b"Q0",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\0",
    b"- ",
    b"id: ",
    b"kind: ",
    b"params: ",
    b"inputs: ",
    b"stages:\n",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"---\n",
    b"...\n",
    b"'",
    b"#",
    b"|\n",
    b">\n",
    b"? ",
    b"~",
];

/// Inputs are kept below this size (a huge line may take one up to it).
pub const MAX_INPUT: usize = 4 << 20;

/// One to four mutations of `input`; `others` are spliced from.
pub fn mutate(rng: &mut Rng, input: &[u8], others: &[&[u8]]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(rng, &mut out, others);
        out.truncate(MAX_INPUT);
    }
    out
}

fn mutate_once(rng: &mut Rng, out: &mut Vec<u8>, others: &[&[u8]]) {
    let len = out.len();
    let at = |rng: &mut Rng| rng.below(len + 1);
    match rng.below(13) {
        // Flip a bit.
        0 if len > 0 => {
            let i = rng.below(len);
            out[i] ^= 1 << rng.below(8);
        }
        // Replace a byte with any byte.
        1 if len > 0 => {
            let i = rng.below(len);
            out[i] = rng.next_u64() as u8;
        }
        // Truncate.
        2 => out.truncate(at(rng)),
        // Delete a range.
        3 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(64)).min(len);
            out.drain(a..b);
        }
        // Insert a format token.
        4..=6 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            let i = at(rng);
            out.splice(i..i, token.iter().copied());
        }
        // Duplicate a line.
        7 if len > 0 => {
            let lines: Vec<&[u8]> = out.split_inclusive(|&b| b == b'\n').collect();
            let line = lines[rng.below(lines.len())].to_vec();
            let i = at(rng);
            out.splice(i..i, line);
        }
        // Splice in part of another input.
        8 if !others.is_empty() => {
            let other = others[rng.below(others.len())];
            if !other.is_empty() {
                let a = rng.below(other.len());
                let b = (a + 1 + rng.below(256)).min(other.len());
                let i = at(rng);
                out.splice(i..i, other[a..b].iter().copied());
            }
        }
        // A huge line: one byte or token repeated.
        9 if rng.chance(8) => {
            let unit: Vec<u8> = if rng.chance(2) {
                vec![b'a']
            } else {
                TOKENS[rng.below(TOKENS.len())].to_vec()
            };
            let times = (1 << (10 + rng.below(11))) / unit.len().max(1);
            let i = at(rng);
            let huge: Vec<u8> = unit
                .iter()
                .copied()
                .cycle()
                .take(unit.len() * times)
                .collect();
            out.splice(i..i, huge);
        }
        // Deep nesting.
        10 if rng.chance(4) => {
            let (open, close): (&[u8], &[u8]) = match rng.below(3) {
                0 => (b"[", b"]"),
                1 => (b"{\"a\":", b"}"),
                _ => (b"- ", b""),
            };
            let depth = 1 << rng.below(14);
            let i = at(rng);
            let mut nest = open.repeat(depth);
            nest.extend(close.repeat(depth));
            out.splice(i..i, nest);
        }
        // Swap two bytes.
        11 if len > 1 => {
            let (a, b) = (rng.below(len), rng.below(len));
            out.swap(a, b);
        }
        // Repeat the whole input (many records, duplicate ids).
        12 if len < MAX_INPUT / 2 => {
            let copy = out.clone();
            out.extend(copy);
        }
        _ => {
            let token = TOKENS[rng.below(TOKENS.len())];
            out.extend_from_slice(token);
        }
    }
}

/// What a replay found: every input run and the findings among them.
#[derive(Debug, Default)]
pub struct Replay {
    pub runs: u64,
    pub findings: Vec<(String, Verdict)>,
}

/// Runs every committed seed and crasher of `target`, then `mutations` deterministic
/// mutants of the seeds (seeded by `seed`), in `dir`.
pub fn replay(target: &Target, dir: &Path, mutations: usize, seed: u64) -> std::io::Result<Replay> {
    let root = crate_dir();
    let mut corpus = inputs(&root.join("seeds"), target)?;
    corpus.extend(inputs(&root.join("crashers"), target)?);
    let mut report = Replay::default();
    for (path, bytes) in &corpus {
        let verdict = exec(target, dir, bytes)?;
        report.runs += 1;
        if verdict.is_finding() {
            report.findings.push((path.display().to_string(), verdict));
        }
    }
    let seeds: Vec<&[u8]> = corpus.iter().map(|(_, b)| b.as_slice()).collect();
    if seeds.is_empty() {
        return Ok(report);
    }
    let mut rng = Rng::new(seed);
    for i in 0..mutations {
        let base = seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, base, &seeds);
        let verdict = exec(target, dir, &input)?;
        report.runs += 1;
        if verdict.is_finding() {
            report
                .findings
                .push((format!("mutant {i} of seed {seed}"), verdict));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_judged_by_location() {
        let path = Path::new("/x/corpus.jsonl");
        let at_line = judge(path, Err(Error::input(path, 3, "expected a JSON object")));
        assert!(matches!(at_line, Verdict::Rejected(_)), "{at_line:?}");
        let whole = judge(path, Err(Error::file(path, "empty file: expected a doc")));
        assert!(matches!(whole, Verdict::Rejected(_)));
        let nowhere = judge(path, Err(Error::file(path, "something is off")));
        assert!(nowhere.is_finding());
        let other_file = judge(path, Err(Error::input(Path::new("/y"), 1, "bad")));
        assert!(
            other_file.is_finding(),
            "the error must name the input file"
        );
        assert!(names_a_line("trailing characters at line 2 column 5"));
        assert!(!names_a_line("no line here"));
    }

    #[test]
    fn signatures_ignore_numbers_and_quoted_values() {
        let a = Verdict::Rejected("/a/f: expected a \"x1\" at 12".into());
        let b = Verdict::Rejected("/b/f: expected a \"y\" at 999".into());
        assert_eq!(a.signature(), b.signature());
        assert_ne!(
            a.signature(),
            Verdict::Panicked("/a/f: x".into()).signature()
        );
    }

    #[test]
    fn mutation_is_deterministic_per_seed_and_bounded() {
        let seed = b"{\"_id\": \"1\", \"text\": \"a\"}\n".to_vec();
        let run = |s| {
            let mut rng = Rng::new(s);
            (0..200)
                .map(|_| mutate(&mut rng, &seed, &[&seed]))
                .collect::<Vec<_>>()
        };
        let first = run(1);
        assert_eq!(first, run(1));
        assert_ne!(first, run(2));
        assert!(first.iter().all(|m| m.len() <= MAX_INPUT));
        assert!(first.iter().any(|m| m != &seed));
    }

    #[test]
    fn every_target_has_seeds() {
        for t in TARGETS {
            let seeds = inputs(&crate_dir().join("seeds"), t).unwrap();
            assert!(!seeds.is_empty(), "no seeds for {}", t.name);
        }
    }
}
