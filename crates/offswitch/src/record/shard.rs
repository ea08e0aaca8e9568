//! Which slice of a run's grid of episodes a machine runs (`offswitch eval --shard K/N`).
//!
//! The grid is every (cell, epoch) of a run, numbered epoch-major: episode `i` is epoch
//! `i / cells + 1` of the cell at position `i % cells` (cells in the order of the run's
//! models, then variants). Shard `K` of `N` holds the episodes whose number is `K - 1`
//! modulo `N`: every episode is in exactly one shard, each cell is spread evenly over
//! the shards, and the slice depends only on the run's definition (so a resumed shard
//! runs the same episodes).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 1-based: `K` of `K/N`.
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--shard takes K/N with 1 <= K <= N (for example 2/4), got {0:?}")]
pub struct ShardError(String);

impl std::str::FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError(text.to_string());
        let (k, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        Shard::new(index, count).ok_or_else(bad)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Option<Shard> {
        (count >= 1 && (1..=count).contains(&index)).then_some(Shard { index, count })
    }

    /// Whether epoch `epoch` (1-based) of the cell at `cell` of `cells` is in this shard.
    pub fn holds(&self, epoch: u32, cell: usize, cells: usize) -> bool {
        let number = (u64::from(epoch.max(1)) - 1) * cells as u64 + cell as u64;
        number % u64::from(self.count) == u64::from(self.index - 1)
    }

    /// How many of a grid of `total` episodes this shard holds.
    pub fn size(&self, total: u64) -> u64 {
        let (n, k) = (u64::from(self.count), u64::from(self.index - 1));
        total / n + u64::from(k < total % n)
    }

    /// The episodes a run plans: all of them, or a shard's slice.
    pub fn planned(shard: Option<Shard>, total: u64) -> u64 {
        shard.map_or(total, |s| s.size(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(" 1 / 1 ".parse::<Shard>(), Ok(Shard { index: 1, count: 1 }));
        for bad in ["0/4", "5/4", "1/0", "2", "a/b", "-1/4", "", "1/4/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad} was taken");
        }
        assert_eq!(Shard { index: 3, count: 8 }.to_string(), "3/8");
    }

    proptest! {
        /// Every episode of any grid is in exactly one shard, and each shard's size is
        /// the number of episodes it holds.
        #[test]
        fn every_episode_is_in_exactly_one_shard(cells in 1usize..7, runs in 1u32..12, count in 1u32..9) {
            let shards: Vec<Shard> = (1..=count).map(|k| Shard::new(k, count).unwrap()).collect();
            let mut held = vec![0u64; shards.len()];
            for epoch in 1..=runs {
                for cell in 0..cells {
                    let owners: Vec<usize> = (0..shards.len()).filter(|&s| shards[s].holds(epoch, cell, cells)).collect();
                    prop_assert_eq!(owners.len(), 1);
                    held[owners[0]] += 1;
                }
            }
            let total = cells as u64 * u64::from(runs);
            for (s, shard) in shards.iter().enumerate() {
                prop_assert_eq!(shard.size(total), held[s]);
            }
            prop_assert_eq!(held.iter().sum::<u64>(), total);
        }
    }
}
