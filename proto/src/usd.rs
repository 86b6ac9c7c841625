//! An amount of US dollars (what a run cost), shared by the `done` event
//! and the sessions list; re-exported as `events::Usd`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// An amount of US dollars, kept in millionths so that it compares exactly;
/// on the wire a plain JSON number of dollars (`0.0912`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Usd {
    micros: u64,
}

impl Usd {
    /// `dollars` rounded to a millionth; `None` unless finite and not
    /// negative.
    pub fn from_dollars(dollars: f64) -> Option<Usd> {
        if !(0.0..=1e12).contains(&dollars) {
            return None;
        }
        Some(Usd {
            micros: (dollars * 1e6).round() as u64,
        })
    }

    pub fn dollars(self) -> f64 {
        self.micros as f64 / 1e6
    }
}

impl Serialize for Usd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.dollars())
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dollars = f64::deserialize(d)?;
        Usd::from_dollars(dollars)
            .ok_or_else(|| D::Error::custom(format!("not an amount of dollars: {dollars}")))
    }
}
