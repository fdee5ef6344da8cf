//! Shard lists as open_clip (through webdataset's braceexpand) accepts them:
//! `::`-separated patterns, each with brace groups that are numeric ranges
//! (`{00000..00127}`, zero padding kept) or comma lists (`{train,val}`).

use crate::{Error, Result};

/// Every shard path a shard list names, in order.
pub fn expand_shard_list(list: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for pattern in list.split("::").filter(|p| !p.is_empty()) {
        expand(pattern, pattern, &mut out)?;
    }
    if out.is_empty() {
        return Err(Error::option("shard list", format!("{list:?} names no shard")));
    }
    Ok(out)
}

fn expand(pattern: &str, whole: &str, out: &mut Vec<String>) -> Result<()> {
    let Some(open) = pattern.find('{') else {
        if pattern.contains('}') {
            return Err(Error::option("shard list", format!("unmatched '}}' in {whole:?}")));
        }
        out.push(pattern.to_string());
        return Ok(());
    };
    let close = pattern[open..]
        .find('}')
        .map(|i| open + i)
        .ok_or_else(|| Error::option("shard list", format!("unmatched '{{' in {whole:?}")))?;
    let (head, body, tail) = (&pattern[..open], &pattern[open + 1..close], &pattern[close + 1..]);
    for alternative in alternatives(body, whole)? {
        expand(&format!("{head}{alternative}{tail}"), whole, out)?;
    }
    Ok(())
}

fn alternatives(body: &str, whole: &str) -> Result<Vec<String>> {
    if let Some((lo, hi)) = body.split_once("..") {
        let bad = || Error::option("shard list", format!("{{{body}}} in {whole:?} is not a range of whole numbers"));
        let (a, b): (u64, u64) = (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?);
        let padded = |s: &str| s.len() > 1 && s.starts_with('0');
        let width = if padded(lo) || padded(hi) { lo.len().max(hi.len()) } else { 0 };
        let numbers: Vec<u64> = if a <= b { (a..=b).collect() } else { (b..=a).rev().collect() };
        Ok(numbers.into_iter().map(|n| format!("{n:0width$}")).collect())
    } else if body.contains(',') {
        Ok(body.split(',').map(str::to_string).collect())
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
}
