//! Shard lists as open_clip (through webdataset's braceexpand) accepts them:
//! `::`-separated patterns, each with brace groups that are numeric ranges
//! (`{00000..00127}`, zero padding kept) or comma lists (`{train,val}`).
//! A list may name at most [`MAX_SHARDS`] paths; each pattern is counted
//! (the product of its groups' sizes) before anything is expanded.

use crate::limits::MAX_SHARDS;
use crate::{Error, Result};

/// Every shard path a shard list names, in order.
pub fn expand_shard_list(list: &str) -> Result<Vec<String>> {
    let patterns = list.split("::").filter(|p| !p.is_empty()).map(parse).collect::<Result<Vec<_>>>()?;
    let mut total = 0usize;
    for pattern in &patterns {
        let count = pattern.count();
        if count.is_none_or(|n| n > MAX_SHARDS as u64) {
            return Err(too_many(&format!("{:?} names", pattern.text), count));
        }
        total += count.unwrap_or_default() as usize;
        if total > MAX_SHARDS {
            return Err(too_many(&format!("{list:?} names at least"), Some(total as u64)));
        }
    }
    if total == 0 {
        return Err(Error::option("shard list", format!("{list:?} names no shard")));
    }
    let mut out = Vec::with_capacity(total);
    for pattern in &patterns {
        pattern.expand(&mut out);
    }
    Ok(out)
}

fn too_many(what: &str, count: Option<u64>) -> Error {
    let count = count.map_or_else(|| "2^64 or more".to_string(), |n| n.to_string());
    Error::option("shard list", format!("{what} {count} shards, more than the MAX_SHARDS ceiling ({MAX_SHARDS})"))
}

/// One `::`-separated pattern: literal text and brace groups, in order.
struct Pattern<'a> {
    text: &'a str,
    parts: Vec<Part<'a>>,
}

enum Part<'a> {
    Literal(&'a str),
    /// `{lo..hi}`: counts from `lo` to `hi` (down if `hi < lo`), zero-padded to `width`.
    Range {
        lo: u64,
        hi: u64,
        width: usize,
    },
    /// `{a,b,c}`
    List(Vec<&'a str>),
}

impl Part<'_> {
    /// How many alternatives the part has; `None` past `u64::MAX`.
    fn count(&self) -> Option<u64> {
        match self {
            Part::Literal(_) => Some(1),
            Part::Range { lo, hi, .. } => lo.abs_diff(*hi).checked_add(1),
            Part::List(items) => Some(items.len() as u64),
        }
    }
}

impl Pattern<'_> {
    /// How many paths the pattern names; `None` past `u64::MAX`.
    fn count(&self) -> Option<u64> {
        self.parts.iter().try_fold(1u64, |n, part| n.checked_mul(part.count()?))
    }

    /// Appends every path the pattern names, part by part (each step at most
    /// as many paths as the whole pattern names).
    fn expand(&self, out: &mut Vec<String>) {
        let mut paths = vec![String::new()];
        for part in &self.parts {
            paths = match part {
                Part::Literal(text) => paths.into_iter().map(|p| p + text).collect(),
                Part::List(items) => paths.iter().flat_map(|p| items.iter().map(move |i| format!("{p}{i}"))).collect(),
                &Part::Range { lo, hi, width } => {
                    let numbers: Vec<u64> = if lo <= hi { (lo..=hi).collect() } else { (hi..=lo).rev().collect() };
                    paths.iter().flat_map(|p| numbers.iter().map(move |n| format!("{p}{n:0width$}"))).collect()
                }
            };
        }
        out.extend(paths);
    }
}

fn parse(text: &str) -> Result<Pattern<'_>> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(open) = rest.find('{') else {
            if rest.contains('}') {
                return Err(Error::option("shard list", format!("unmatched '}}' in {text:?}")));
            }
            parts.push(Part::Literal(rest));
            break;
        };
        if rest[..open].contains('}') {
            return Err(Error::option("shard list", format!("unmatched '}}' in {text:?}")));
        }
        let close = rest[open..]
            .find('}')
            .map(|i| open + i)
            .ok_or_else(|| Error::option("shard list", format!("unmatched '{{' in {text:?}")))?;
        parts.push(Part::Literal(&rest[..open]));
        parts.push(group(&rest[open + 1..close], text)?);
        rest = &rest[close + 1..];
    }
    Ok(Pattern { text, parts })
}

fn group<'a>(body: &'a str, whole: &str) -> Result<Part<'a>> {
    if body.contains('{') {
        Err(Error::option("shard list", format!("nested '{{' in {{{body}}} of {whole:?}")))
    } else if let Some((lo, hi)) = body.split_once("..") {
        let bad = || Error::option("shard list", format!("{{{body}}} in {whole:?} is not a range of whole numbers"));
        let (a, b): (u64, u64) = (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?);
        let padded = |s: &str| s.len() > 1 && s.starts_with('0');
        let width = if padded(lo) || padded(hi) { lo.len().max(hi.len()) } else { 0 };
        Ok(Part::Range { lo: a, hi: b, width })
    } else if body.contains(',') {
        Ok(Part::List(body.split(',').collect()))
    } else {
        Err(Error::option("shard list", format!("{{{body}}} in {whole:?} is neither a range a..b nor a list a,b")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_keep_zero_padding_and_lists_concatenate() {
        let shards = expand_shard_list("data/{00000..00002}.tar::extra/x.tar").unwrap();
        assert_eq!(shards, vec!["data/00000.tar", "data/00001.tar", "data/00002.tar", "extra/x.tar"]);
        assert_eq!(expand_shard_list("s{8..11}.tar").unwrap(), vec!["s8.tar", "s9.tar", "s10.tar", "s11.tar"]);
        assert_eq!(expand_shard_list("s{2..0}").unwrap(), vec!["s2", "s1", "s0"]);
    }

    #[test]
    fn several_groups_and_comma_lists_expand_as_a_product() {
        let shards = expand_shard_list("{train,val}/{0..1}.tar").unwrap();
        assert_eq!(shards, vec!["train/0.tar", "train/1.tar", "val/0.tar", "val/1.tar"]);
    }

    #[test]
    fn malformed_patterns_are_errors_that_quote_them() {
        for bad in ["data/{0..x}.tar", "data/{00000..00010.tar", "data/0}.tar", "data/{abc}.tar", "::"] {
            let err = expand_shard_list(bad).unwrap_err().to_string();
            assert!(err.contains("shard list"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_pattern_over_the_ceiling_is_refused_before_expanding() {
        let start = std::time::Instant::now();
        let err = expand_shard_list("data/{000000000..999999999}.tar").unwrap_err().to_string();
        assert!(start.elapsed().as_millis() < 1000, "took {:?}", start.elapsed());
        assert!(err.contains("\"data/{000000000..999999999}.tar\" names 1000000000 shards"), "{err}");
        assert!(err.contains("MAX_SHARDS ceiling (1000000)"), "{err}");
        let err = expand_shard_list("{0..18446744073709551615}").unwrap_err().to_string();
        assert!(err.contains("2^64 or more shards"), "{err}");
        let err = expand_shard_list("{0..4294967296}/{0..4294967296}").unwrap_err().to_string();
        assert!(err.contains("2^64 or more shards"), "{err}");
        let err = expand_shard_list("a/{0..999}/{0..999}.tar::b/{0..1}.tar").unwrap_err().to_string();
        assert!(err.contains("names at least 1000002 shards") && err.contains("b/{0..1}.tar"), "{err}");
        assert_eq!(expand_shard_list("{0..999}/{0..999}").unwrap().len(), MAX_SHARDS);
    }
}
