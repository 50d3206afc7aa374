//! Small statistics helpers with numpy's conventions (so our cuts match GalacticFlow's).

/// numpy.percentile with linear interpolation, q in [0, 100]. `v` need not be sorted. NaN for empty input.
pub fn percentile(v: &[f32], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
    s.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(s.len() - 1);
    s[lo] + (pos - lo as f64) * (s[hi] - s[lo])
}

/// The median of the finite values of `v` (the mean of the two middle ones for an even count); NaN when none
/// is finite.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

pub fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_non_finite() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![f64::NAN, 5.0, f64::INFINITY, 1.0]), 3.0);
        assert!(median(vec![f64::NAN]).is_nan() && median(vec![]).is_nan());
    }

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([3, 1, 4, 1, 5, 9, 2, 6], [0, 10, 50, 95, 100]) = [1, 1, 3.5, 7.95, 9]
        let v = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        for (q, want) in [(0.0, 1.0), (10.0, 1.0), (50.0, 3.5), (95.0, 7.95), (100.0, 9.0)] {
            assert!((percentile(&v, q) - want).abs() < 1e-12, "q {q}: {}", percentile(&v, q));
        }
    }
}
