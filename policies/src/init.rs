//! Orthogonal weight initialization (Saxe et al. 2014), seeded.
//!
//! Like `torch.nn.init.orthogonal_`: draw a Gaussian matrix, orthonormalize it (here with
//! modified Gram-Schmidt, which yields the QR factor whose `R` has a positive diagonal), and
//! scale by `gain`. For a `[rows, cols]` weight, the rows are orthonormal when `rows <= cols`,
//! the columns when `rows > cols`.

use rand::Rng;
use rand_distr::StandardNormal;

/// A `[rows, cols]` row-major matrix with orthonormal rows or columns, times `gain`.
pub fn orthogonal<R: Rng + ?Sized>(rows: usize, cols: usize, gain: f32, rng: &mut R) -> Vec<f32> {
    // Orthonormalize the `k = min(rows, cols)` vectors of length `m = max(rows, cols)`.
    let (k, m) = (rows.min(cols), rows.max(cols));
    let mut vecs: Vec<Vec<f64>> = (0..k).map(|_| (0..m).map(|_| rng.sample(StandardNormal)).collect()).collect();
    for i in 0..k {
        for j in 0..i {
            let (done, rest) = vecs.split_at_mut(i);
            let dot: f64 = done[j].iter().zip(&rest[0]).map(|(a, b)| a * b).sum();
            rest[0].iter_mut().zip(&done[j]).for_each(|(x, q)| *x -= dot * q);
        }
        let norm = vecs[i].iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        vecs[i].iter_mut().for_each(|x| *x /= norm);
    }
    let mut out = vec![0.0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // rows <= cols: vector r is row r. Otherwise vector c is column c.
            let v = if rows <= cols { vecs[r][c] } else { vecs[c][r] };
            out[r * cols + c] = (v * f64::from(gain)) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rl_env::rng::NpRandom;

    use super::*;

    fn gram(w: &[f32], rows: usize, cols: usize, by_rows: bool) -> Vec<f64> {
        let n = if by_rows { rows } else { cols };
        let get = |v: usize, i: usize| if by_rows { w[v * cols + i] } else { w[i * cols + v] } as f64;
        let len = if by_rows { cols } else { rows };
        let mut g = vec![0.0; n * n];
        for a in 0..n {
            for b in 0..n {
                g[a * n + b] = (0..len).map(|i| get(a, i) * get(b, i)).sum();
            }
        }
        g
    }

    #[test]
    fn rows_or_columns_are_orthonormal_times_gain() {
        let mut rng = NpRandom::from_seed(0);
        for (rows, cols, gain) in [(4, 64, 1.0f32), (64, 4, 2.0f32.sqrt()), (64, 64, 0.01), (1, 64, 1.0)] {
            let w = orthogonal(rows, cols, gain, rng.bits_mut());
            let by_rows = rows <= cols;
            let g = gram(&w, rows, cols, by_rows);
            let n = rows.min(cols);
            for a in 0..n {
                for b in 0..n {
                    let want = if a == b { f64::from(gain * gain) } else { 0.0 };
                    assert!((g[a * n + b] - want).abs() < 1e-5, "{rows}x{cols} gram[{a},{b}] = {}", g[a * n + b]);
                }
            }
        }
    }

    #[test]
    fn same_seed_same_weights() {
        let a = orthogonal(8, 3, 1.0, NpRandom::from_seed(5).bits_mut());
        let b = orthogonal(8, 3, 1.0, NpRandom::from_seed(5).bits_mut());
        let c = orthogonal(8, 3, 1.0, NpRandom::from_seed(6).bits_mut());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
