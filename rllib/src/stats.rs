//! Mean, variance and standard deviation: the one implementation every report uses.
//!
//! Population statistics (NumPy's `np.mean`, `np.var`, `np.std` with `ddof=0`), summed in `f64`
//! in slice order, so the same numbers give the same bits everywhere.

/// The mean; NaN for an empty slice.
pub fn mean<T: Copy + Into<f64>>(x: &[T]) -> f64 {
    x.iter().map(|v| (*v).into()).sum::<f64>() / x.len() as f64
}

/// The population variance; NaN for an empty slice.
pub fn variance<T: Copy + Into<f64>>(x: &[T]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| ((*v).into() - m).powi(2)).sum::<f64>() / x.len() as f64
}

/// The population standard deviation; NaN for an empty slice.
pub fn std<T: Copy + Into<f64>>(x: &[T]) -> f64 {
    variance(x).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_statistics() {
        assert_eq!(mean(&[1.0f64, 2.0, 3.0, 6.0]), 3.0);
        assert_eq!(variance(&[1.0f32, 2.0, 3.0, 6.0]), 3.5);
        assert_eq!(std(&[2.0f64, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]), 2.0);
        assert!(mean::<f64>(&[]).is_nan());
    }
}
