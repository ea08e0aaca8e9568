//! Interval estimates and tests for rates: Jeffreys and Wilson 95% intervals for one
//! proportion, Fisher's exact test and Newcombe's hybrid-score interval for the
//! difference of two.

use statrs::distribution::{Beta, ContinuousCDF};

const Z95: f64 = 1.959_963_984_540_054;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// Jeffreys interval: quantiles of Beta(x + 1/2, n - x + 1/2), with the bound at 0 (1)
/// when x = 0 (x = n), as Brown, Cai and DasGupta (2001) recommend. The study used it.
pub fn jeffreys(x: u64, n: u64) -> Option<Interval> {
    if n == 0 || x > n {
        return None;
    }
    let beta = Beta::new(x as f64 + 0.5, (n - x) as f64 + 0.5).ok()?;
    let low = if x == 0 { 0.0 } else { beta.inverse_cdf(0.025) };
    let high = if x == n { 1.0 } else { beta.inverse_cdf(0.975) };
    Some(Interval { low, high })
}

/// Wilson score interval.
pub fn wilson(x: u64, n: u64) -> Option<Interval> {
    if n == 0 || x > n {
        return None;
    }
    let (n, p) = (n as f64, x as f64 / n as f64);
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(Interval {
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

/// Two-sided Fisher's exact test for x1/n1 vs x2/n2: the probability, with the margins
/// fixed, of a table at most as likely as the one observed.
pub fn fisher_exact(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<f64> {
    if x1 > n1 || x2 > n2 || n1 + n2 == 0 {
        return None;
    }
    let (successes, total) = (x1 + x2, n1 + n2);
    let lo = successes.saturating_sub(n2);
    let hi = successes.min(n1);
    // log P(X = k) for the hypergeometric distribution of the first row's successes.
    let ln_choose = |n: u64, k: u64| ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k);
    let ln_p =
        |k: u64| ln_choose(n1, k) + ln_choose(n2, successes - k) - ln_choose(total, successes);
    let observed = ln_p(x1);
    let p: f64 = (lo..=hi)
        .map(ln_p)
        .filter(|&l| l <= observed + 1e-7)
        .map(f64::exp)
        .sum();
    Some(p.min(1.0))
}

fn ln_factorial(n: u64) -> f64 {
    statrs::function::gamma::ln_gamma(n as f64 + 1.0)
}

/// Newcombe's hybrid score interval (his method 10) for p1 - p2, from Wilson intervals.
pub fn newcombe_difference(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<Interval> {
    let (a, b) = (wilson(x1, n1)?, wilson(x2, n2)?);
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let d = p1 - p2;
    let low = d - ((p1 - a.low).powi(2) + (b.high - p2).powi(2)).sqrt();
    let high = d + ((a.high - p1).powi(2) + (p2 - b.low).powi(2)).sqrt();
    Some(Interval { low, high })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// Reference values: Wilson and Jeffreys intervals as tabulated by Brown, Cai and
    /// DasGupta (2001) and computed by R's binom / PropCIs packages; Fisher's exact test
    /// for the lady tasting tea (p = 0.4857) and the textbook table [[1, 9], [11, 3]]
    /// (p = 0.002759); Newcombe (1998) example 56/70 vs 48/80: 0.0524 to 0.3339.
    #[test]
    fn formulas_match_published_reference_values() {
        let w = wilson(5, 10).unwrap();
        assert!(
            close(w.low, 0.2366, 1e-4) && close(w.high, 0.7634, 1e-4),
            "{w:?}"
        );
        let w = wilson(0, 10).unwrap();
        assert!(
            close(w.low, 0.0, 1e-9) && close(w.high, 0.2775, 1e-4),
            "{w:?}"
        );
        let j = jeffreys(0, 10).unwrap();
        assert!(
            close(j.low, 0.0, 1e-9) && close(j.high, 0.2172, 1e-3),
            "{j:?}"
        );
        let j = jeffreys(5, 10).unwrap();
        assert!(
            close(j.low, 0.2235, 1e-3) && close(j.high, 0.7765, 1e-3),
            "{j:?}"
        );
        assert!(close(fisher_exact(3, 4, 1, 4).unwrap(), 0.4857, 1e-4));
        assert!(close(fisher_exact(1, 10, 11, 14).unwrap(), 0.002759, 1e-5));
        let d = newcombe_difference(56, 70, 48, 80).unwrap();
        assert!(
            close(d.low, 0.0524, 1e-4) && close(d.high, 0.3339, 1e-4),
            "{d:?}"
        );
    }

    #[test]
    fn degenerate_inputs_are_refused_not_guessed() {
        assert_eq!(jeffreys(1, 0), None);
        assert_eq!(wilson(3, 2), None);
        assert_eq!(fisher_exact(0, 0, 0, 0), None);
        assert_eq!(fisher_exact(0, 5, 0, 5), Some(1.0));
    }
}
