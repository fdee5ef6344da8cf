//! Shard-list brace expansion: a list either is refused or names from one to
//! `MAX_SHARDS` shards, none with a brace left in it, the same on every call.

use super::Verdict;
use reclip_data::{MAX_SHARDS, expand_shard_list};

pub fn seeds() -> Vec<Vec<u8>> {
    [
        "data/{00000..00003}.tar",
        "{train,val}/{0..1}.tar::extra/x.tar",
        "s{8..11}.tar",
        "s{2..0}",
        "a.tar::b.tar::::c.tar",
        "plain.tar",
        "{a,b}{c,d}{e,f}",
        "x{0..1}y{007..009}z{,-}",
        "/abs/path/{0..2}/shard-{000..002}.tar",
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec()
}

pub fn run(input: &[u8]) -> Result<Verdict, String> {
    let list = String::from_utf8_lossy(input);
    let shards = match expand_shard_list(&list) {
        Ok(s) => s,
        Err(e) => return Ok(Verdict::Rejected(e.to_string())),
    };
    if shards.is_empty() || shards.len() > MAX_SHARDS {
        return Err(format!("expanded to {} shards, outside 1..={MAX_SHARDS}", shards.len()));
    }
    if let Some(s) = shards.iter().find(|s| s.contains(['{', '}'])) {
        return Err(format!("the shard {s:?} still has a brace"));
    }
    match expand_shard_list(&list) {
        Ok(again) if again == shards => Ok(Verdict::Accepted),
        Ok(again) => Err(format!("expanded to {} shards, then to {}", shards.len(), again.len())),
        Err(e) => Err(format!("expanded to {} shards, then failed: {e}", shards.len())),
    }
}
