//! The supported measures, parsed from trec_eval names (`ndcg_cut.10`, `recip_rank`, `P.10`,
//! `recall.100`, `map`), rrra's `recip_rank.10` (MRR@10: trec_eval has no reciprocal-rank
//! cutoff) or friendly aliases (`nDCG@10`, `MRR@10`, `R@100`, `P@10`, `MAP`). A measure's
//! [`Measure::label`] names the relevance level of binary measures when it is not
//! trec_eval's default 1 (`MRR@10(rel>=2)`).

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;

use rrra_common::Error;

/// One evaluation measure. Cutoffs count ranks from the top of the run's evaluation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    /// trec_eval `ndcg_cut.k`: DCG over the top `k` with the graded relevance as gain and
    /// `1/log2(rank + 1)` discount, over the ideal DCG@k of all judged documents.
    Ndcg(NonZeroUsize),
    /// trec_eval `recip_rank`: `1/rank` of the first relevant document; with a cutoff (MRR@k,
    /// written `recip_rank.k` by rrra, not a trec_eval name) only the top `k` are searched:
    /// trec_eval's `recip_rank` on the run truncated to its top `k`.
    RecipRank(Option<NonZeroUsize>),
    /// trec_eval `recall.k`: relevant documents in the top `k` over all judged relevant ones.
    Recall(NonZeroUsize),
    /// trec_eval `P.k`: relevant documents in the top `k`, over `k`.
    Precision(NonZeroUsize),
    /// trec_eval `map`: average precision over all judged relevant documents.
    Map,
}

impl Measure {
    /// The trec_eval name (`ndcg_cut.10`, `recip_rank`, `recall.100`, `P.10`, `map`); `None`
    /// for MRR@k, which trec_eval does not have (see [`Measure::reference_name`]).
    pub fn trec_eval_name(&self) -> Option<String> {
        match self {
            Measure::RecipRank(Some(_)) => None,
            other => Some(other.reference_name()),
        }
    }

    /// The name `tests/python/pytrec_reference.py` (and rrra-testkit's `pytrec`) takes: the
    /// trec_eval name, or `recip_rank.k` for MRR@k, which the script computes as pytrec_eval's
    /// `recip_rank` on the run truncated to its top `k`.
    pub fn reference_name(&self) -> String {
        match self {
            Measure::Ndcg(k) => format!("ndcg_cut.{k}"),
            Measure::RecipRank(None) => "recip_rank".to_owned(),
            Measure::RecipRank(Some(k)) => format!("recip_rank.{k}"),
            Measure::Recall(k) => format!("recall.{k}"),
            Measure::Precision(k) => format!("P.{k}"),
            Measure::Map => "map".to_owned(),
        }
    }

    /// Whether the relevance threshold decides what counts as relevant (nDCG takes the
    /// graded relevance as gain and ignores it).
    pub fn is_binary(&self) -> bool {
        !matches!(self, Measure::Ndcg(_))
    }

    /// The name metric rows and reports use: the display name (`MRR@10`), with the relevance
    /// level appended to a binary measure when it is not trec_eval's default 1
    /// (`MRR@10(rel>=2)`), so that a value is never read as being at another level.
    pub fn label(&self, relevance_threshold: i32) -> String {
        if self.is_binary() && relevance_threshold != 1 {
            format!("{self}(rel>={relevance_threshold})")
        } else {
            self.to_string()
        }
    }

    /// How deep into a ranking the measure looks (`None`: the whole ranking).
    pub(crate) fn depth(&self) -> Option<usize> {
        match self {
            Measure::Ndcg(k)
            | Measure::RecipRank(Some(k))
            | Measure::Recall(k)
            | Measure::Precision(k) => Some(k.get()),
            Measure::RecipRank(None) | Measure::Map => None,
        }
    }
}

/// The canonical display name: `nDCG@10`, `MRR@10` (`MRR` without cutoff), `R@100`, `P@10`,
/// `MAP`. [`FromStr`] accepts it back.
impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measure::Ndcg(k) => write!(f, "nDCG@{k}"),
            Measure::RecipRank(None) => f.write_str("MRR"),
            Measure::RecipRank(Some(k)) => write!(f, "MRR@{k}"),
            Measure::Recall(k) => write!(f, "R@{k}"),
            Measure::Precision(k) => write!(f, "P@{k}"),
            Measure::Map => f.write_str("MAP"),
        }
    }
}

/// Parses a trec_eval name or an alias, case-insensitively; the cutoff follows a `.` or an
/// `@`. Names: `ndcg_cut`/`ndcg` (cutoff required), `recip_rank`/`mrr`/`rr` (cutoff
/// optional), `recall`/`r` (required), `p`/`precision` (required), `map` (no cutoff).
impl FromStr for Measure {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::Invalid(format!(
                "measure {s:?}: {why} (expected a trec_eval name: ndcg_cut.K, recip_rank, \
                 recall.K, P.K, map; rrra's recip_rank.K (MRR@K, not in trec_eval); or nDCG@K, \
                 MRR[@K], R@K / Recall@K, P@K, MAP)"
            ))
        };
        let (name, cutoff) = match s.find(['.', '@']) {
            Some(at) => (&s[..at], Some(&s[at + 1..])),
            None => (s, None),
        };
        let cutoff = cutoff
            .map(|c| {
                c.parse::<NonZeroUsize>()
                    .map_err(|_| bad("the cutoff must be a positive integer"))
            })
            .transpose()?;
        let required = || cutoff.ok_or_else(|| bad("this measure needs a cutoff"));
        match name.to_ascii_lowercase().as_str() {
            "ndcg_cut" | "ndcg" => Ok(Measure::Ndcg(required()?)),
            "recip_rank" | "mrr" | "rr" => Ok(Measure::RecipRank(cutoff)),
            "recall" | "r" => Ok(Measure::Recall(required()?)),
            "p" | "precision" => Ok(Measure::Precision(required()?)),
            "map" if cutoff.is_none() => Ok(Measure::Map),
            "map" => Err(bad("map takes no cutoff")),
            _ => Err(bad("unknown measure")),
        }
    }
}
