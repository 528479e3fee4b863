//! Interleaved rounds of a Tessera-versus-baseline comparison.
//!
//! On a shared machine a burst of other work can land in any one run and move its tail
//! latency several-fold (seen here: the same build measured 1.6× and 3.0× the baseline's p99
//! in two suite runs). The suite therefore measures each comparison in rounds — a Tessera
//! run, then a baseline run right after it — and reports the median of the per-round
//! ratios, so one disturbed round moves the spread, not the verdict.

use serde::Serialize;

/// One closed-loop saturation round: Tessera's run, then the baseline's.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct SaturationRound {
    /// Tessera's maximum heartbeats per second.
    pub tessera_rps: f64,
    /// The baseline's, right after.
    pub baseline_rps: f64,
    /// Tessera's (+ redis-server's) CPU per heartbeat (µs).
    pub tessera_cpu_us: f64,
    /// The baseline's CPU per heartbeat (µs).
    pub baseline_cpu_us: f64,
    /// Cores the server under test used in Tessera's run (Tessera + its redis-server).
    pub tessera_server_cores: f64,
    /// Cores the generator used in Tessera's run.
    pub tessera_generator_cores: f64,
    /// Cores the baseline server used in its run.
    pub baseline_server_cores: f64,
    /// Cores the generator used in the baseline's run.
    pub baseline_generator_cores: f64,
}

impl SaturationRound {
    /// Tessera's throughput ÷ the baseline's.
    pub fn throughput_ratio(&self) -> f64 {
        ratio(self.tessera_rps, self.baseline_rps)
    }

    /// Tessera's CPU per heartbeat ÷ the baseline's (lower is better).
    pub fn cpu_ratio(&self) -> f64 {
        ratio(self.tessera_cpu_us, self.baseline_cpu_us)
    }

    /// Whether both runs measured their server: in neither did the generator use more CPU
    /// than the server under test. A round that fails this measured the generator, and its
    /// throughput ratio is not reported.
    pub fn valid(&self) -> bool {
        self.tessera_generator_cores <= self.tessera_server_cores
            && self.baseline_generator_cores <= self.baseline_server_cores
    }
}

/// One open-loop round at the half rate: Tessera's p99, then the baseline's.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct LatencyRound {
    /// Tessera's p99 (µs, from intended start).
    pub tessera_p99_us: u64,
    /// The baseline's p99 (µs), right after.
    pub baseline_p99_us: u64,
}

impl LatencyRound {
    /// Tessera's p99 ÷ the baseline's.
    pub fn ratio(&self) -> f64 {
        ratio(self.tessera_p99_us as f64, self.baseline_p99_us as f64)
    }
}

/// `a / b`, or 0 when `b` is not positive.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Index of the median of `values` (the lower one of an even count); `None` when empty.
pub fn median_index(values: &[f64]) -> Option<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order.get(values.len().saturating_sub(1) / 2).copied()
}

/// The round with the median value of `f`, and every round's value in round order.
pub fn median_round<T: Copy>(rounds: &[T], f: impl Fn(&T) -> f64) -> Option<(T, Vec<f64>)> {
    let values: Vec<f64> = rounds.iter().map(f).collect();
    median_index(&values).map(|i| (rounds[i], values))
}

/// The round with the median value of `f` among the rounds `keep` accepts, its index in
/// `rounds`, and the values of those rounds in round order.
pub fn median_round_of<T: Copy>(
    rounds: &[T],
    keep: impl Fn(&T) -> bool,
    f: impl Fn(&T) -> f64,
) -> Option<(usize, T, Vec<f64>)> {
    let kept: Vec<usize> = (0..rounds.len()).filter(|&i| keep(&rounds[i])).collect();
    let values: Vec<f64> = kept.iter().map(|&i| f(&rounds[i])).collect();
    median_index(&values).map(|m| (kept[m], rounds[kept[m]], values))
}

/// The values as a short list for a report: `0.91, 0.93, 1.02`.
pub fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_index_picks_the_middle_value_whatever_the_order() {
        assert_eq!(median_index(&[]), None);
        assert_eq!(median_index(&[4.0]), Some(0));
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), Some(2));
        assert_eq!(median_index(&[9.0, 1.0, 5.0, 7.0, 3.0]), Some(2));
        // Even count: the lower of the two middle values.
        assert_eq!(median_index(&[4.0, 1.0, 3.0, 2.0]), Some(3));
    }

    #[test]
    fn one_disturbed_round_does_not_move_the_median() {
        let rounds = [
            LatencyRound {
                tessera_p99_us: 4_000,
                baseline_p99_us: 2_500,
            },
            LatencyRound {
                tessera_p99_us: 50_000,
                baseline_p99_us: 2_000,
            },
            LatencyRound {
                tessera_p99_us: 3_000,
                baseline_p99_us: 2_000,
            },
        ];
        let ratios: Vec<f64> = rounds.iter().map(LatencyRound::ratio).collect();
        assert_eq!(median_index(&ratios), Some(0));
        assert!((ratios[0] - 1.6).abs() < 1e-9);
    }

    #[test]
    fn ratios_of_a_missing_baseline_are_zero() {
        let r = SaturationRound {
            tessera_rps: 10.0,
            baseline_rps: 0.0,
            tessera_cpu_us: 30.0,
            baseline_cpu_us: 20.0,
            ..SaturationRound::default()
        };
        assert_eq!(r.throughput_ratio(), 0.0);
        assert!((r.cpu_ratio() - 1.5).abs() < 1e-9);
        assert_eq!(list(&[0.914, 1.0]), "0.91, 1.00");
    }

    #[test]
    fn a_round_whose_generator_outworked_a_server_is_invalid_and_left_out() -> anyhow::Result<()> {
        let round = |t: f64, b: f64, gen_b: f64| SaturationRound {
            tessera_rps: t,
            baseline_rps: b,
            tessera_server_cores: 1.0,
            tessera_generator_cores: 0.4,
            baseline_server_cores: 0.65,
            baseline_generator_cores: gen_b,
            ..SaturationRound::default()
        };
        // The middle round's baseline was generator-bound (generator 0.99 > server 0.65).
        let rounds = [
            round(60.0, 100.0, 0.4),
            round(50.0, 50.0, 0.99),
            round(70.0, 100.0, 0.5),
        ];
        assert!(rounds[0].valid() && !rounds[1].valid() && rounds[2].valid());
        let (i, r, values) = median_round_of(
            &rounds,
            SaturationRound::valid,
            SaturationRound::throughput_ratio,
        )
        .ok_or_else(|| anyhow::anyhow!("two valid rounds"))?;
        assert_eq!(i, 0);
        assert!((r.throughput_ratio() - 0.6).abs() < 1e-9);
        assert_eq!(values.len(), 2);
        assert!(
            median_round_of(&rounds[1..2], SaturationRound::valid, |r| r.tessera_rps).is_none()
        );
        Ok(())
    }
}
