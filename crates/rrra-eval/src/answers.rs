//! DPR-style answer matching and top-k retrieval accuracy (`has_answer` with match type
//! "string" in DPR's `qa_validation.py`): passage and answers are NFD-normalised, split into
//! DrQA `SimpleTokenizer` tokens (runs of letters, digits and marks, or any single character
//! that is not a separator or control), lowercased, and an answer matches when its tokens occur
//! contiguously in the passage's tokens.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use rayon::prelude::*;
use regex::Regex;
use rrra_common::{Error, Result};
use unicode_normalization::UnicodeNormalization;

use crate::run::Run;

/// `SimpleTokenizer`'s pattern `([\p{L}\p{N}\p{M}]+)|([^\p{Z}\p{C}])`; its IGNORECASE flag
/// changes nothing for these classes.
static TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[\p{L}\p{N}\p{M}]+|[^\p{Z}\p{C}]").expect("the token pattern is valid")
});

/// DPR's `tokenizer.tokenize(_normalize(text)).words(uncased=True)`.
fn words(text: &str) -> Vec<String> {
    let text: String = text.nfd().collect();
    TOKEN
        .find_iter(&text)
        .map(|m| m.as_str().to_lowercase())
        .collect()
}

/// Whether the tokens of one of `answers` occur contiguously in `passage`'s tokens.
fn contains_any(passage: &[String], answers: &[Vec<String>]) -> bool {
    answers.iter().any(|answer| {
        // DPR's `range(0, len(text) - len(answer) + 1)` compares an empty answer (one without
        // any token) to an empty slice, which always matches.
        answer.is_empty()
            || passage
                .windows(answer.len())
                .any(|w| w == answer.as_slice())
    })
}

/// DPR's `has_answer(answers, passage, SimpleTokenizer(), "string")`. As in DPR, an answer
/// without any token (empty, or only whitespace) matches every passage.
pub fn has_answer(passage: &str, answers: &[String]) -> bool {
    let answers: Vec<Vec<String>> = answers.iter().map(|a| words(a)).collect();
    contains_any(&words(passage), &answers)
}

/// Top-k answer accuracy: per query, 1 when one of its top `k` passages has an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerAccuracy {
    ks: Vec<usize>,
    query_ids: Vec<String>,
    /// Row-major: `hits[q * ks.len() + j]` for `ks[j]`.
    hits: Vec<f64>,
    means: Vec<f64>,
}

impl AnswerAccuracy {
    /// The cutoffs, in the order asked for.
    pub fn ks(&self) -> &[usize] {
        &self.ks
    }

    /// The evaluated queries (those with answers), in byte order.
    pub fn query_ids(&self) -> &[String] {
        &self.query_ids
    }

    /// One query's hit@k (1.0 or 0.0), if `k` was asked for.
    pub fn hit(&self, query_id: &str, k: usize) -> Option<f64> {
        let j = self.ks.iter().position(|&x| x == k)?;
        let q = self
            .query_ids
            .binary_search_by(|id| id.as_str().cmp(query_id))
            .ok()?;
        Some(self.hits[q * self.ks.len() + j])
    }

    /// Hit@k of every query, aligned with [`AnswerAccuracy::query_ids`].
    pub fn per_query(&self, k: usize) -> Option<Vec<f64>> {
        let j = self.ks.iter().position(|&x| x == k)?;
        Some(
            self.hits
                .chunks_exact(self.ks.len())
                .map(|row| row[j])
                .collect(),
        )
    }

    /// Top-k accuracy: the mean of hit@k over the evaluated queries (0 when there are none).
    pub fn mean(&self, k: usize) -> Option<f64> {
        let j = self.ks.iter().position(|&x| x == k)?;
        Some(self.means[j])
    }
}

/// Top-k accuracy of `run` for each `k` of `ks`, as DPR computes it. The queries are those of
/// `answers` (query id to gold answers); one the run does not retrieve for scores 0, and run
/// queries without answers are ignored. Rankings are in evaluation order (see [`Run`]).
/// `passage_text` gives a document's text: DPR matches the passage text, not its title.
/// Unlike DPR, which counts a passage missing from its database as no hit, a document that
/// `passage_text` does not know is an error. `k = 0` gives 0.
pub fn answer_top_k<F, S>(
    run: &Run,
    passage_text: F,
    answers: &BTreeMap<String, Vec<String>>,
    ks: &[usize],
) -> Result<AnswerAccuracy>
where
    F: Fn(&str) -> Option<S> + Sync,
    S: AsRef<str>,
{
    let depth = ks.iter().copied().max().unwrap_or(0);
    let queries: Vec<(&String, &Vec<String>)> = answers.iter().collect();
    // The 0-based rank of each query's first passage with an answer, within `depth`.
    let first_hits = queries
        .par_iter()
        .map(|&(query_id, gold)| {
            let gold: Vec<Vec<String>> = gold.iter().map(|a| words(a)).collect();
            let ranking = run.ranking(query_id).unwrap_or_default();
            for (i, doc) in ranking.iter().take(depth).enumerate() {
                let text = passage_text(&doc.doc_id).ok_or_else(|| {
                    Error::Invalid(format!(
                        "answer accuracy: query {query_id:?} retrieves document {:?}, which \
                         has no passage text",
                        doc.doc_id
                    ))
                })?;
                if contains_any(&words(text.as_ref()), &gold) {
                    return Ok(Some(i));
                }
            }
            Ok(None)
        })
        .collect::<Result<Vec<Option<usize>>>>()?;

    let hits: Vec<f64> = first_hits
        .iter()
        .flat_map(|first| {
            ks.iter()
                .map(move |&k| f64::from(u8::from(first.is_some_and(|i| i < k))))
        })
        .collect();
    let n = queries.len();
    let means = (0..ks.len())
        .map(|j| {
            let sum: f64 = hits.iter().skip(j).step_by(ks.len()).sum();
            if n == 0 { 0.0 } else { sum / n as f64 }
        })
        .collect();
    Ok(AnswerAccuracy {
        ks: ks.to_vec(),
        query_ids: queries.iter().map(|&(q, _)| q.clone()).collect(),
        hits,
        means,
    })
}
