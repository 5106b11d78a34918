//! The dense-layer kernel of the fast path: `act(x W^T + b)` over a block of rows, on plain `f32` slices.
//!
//! The kernel computes output tiles of [`TILE_ROWS`] rows by up to [`TILE_COLS`] columns with
//! the tile's accumulators held in registers: each step over the inputs loads one short row of
//! weights and reuses it for every row of the tile. To make every access a fixed-size chunk
//! (no bounds checks, so the compiler vectorizes the tile), the weights are stored as panels,
//! one per column tile, each `[n_in, C]` row-major, and each row tile of the input is first
//! packed into `[n_in, TILE_ROWS]`.
//!
//! The arithmetic of every output is the same for every tile shape and instruction set: start
//! from the bias, then add `x_k * w_k` for `k = 0, 1, ..., n_in - 1`, one rounded multiply and
//! one rounded add each (Rust never fuses them into an FMA). Results are therefore bitwise
//! reproducible across batch sizes, block boundaries and CPUs.

use crate::config::Activation;
use crate::fastmath::tanh_f32;

/// Rows per register tile.
pub(crate) const TILE_ROWS: usize = 4;
/// Column-tile widths for tiles of [`TILE_ROWS`] rows: 16 `f32` are two AVX2 registers per row.
const MULTI_ROW_COLS: [usize; 4] = [16, 8, 4, 1];
/// Column-tile widths for a lone row, which needs wider tiles to keep enough independent sums
/// in flight.
const ONE_ROW_COLS: [usize; 5] = [32, 16, 8, 4, 1];

/// One column tile: outputs `o0..o0 + cols`, whose weight panel starts at `offset`.
#[derive(Debug, Clone, Copy)]
struct ColTile {
    o0: usize,
    cols: usize,
    offset: usize,
}

/// The weight cut into panels, one per column tile, each `[n_in, cols]` row-major.
#[derive(Debug, Clone)]
struct Panels {
    data: Vec<f32>,
    tiles: Vec<ColTile>,
}

impl Panels {
    /// Tiles `[n_out]` greedily with the widest of `widths` that fits, and copies each tile's
    /// columns of the `[n_out, n_in]` weight `w` into its panel.
    fn new(w: &[f32], n_out: usize, n_in: usize, widths: &[usize]) -> Self {
        let mut tiles = Vec::new();
        let mut o0 = 0;
        while o0 < n_out {
            let cols = *widths.iter().find(|c| o0 + **c <= n_out).expect("widths end with 1");
            tiles.push(ColTile { o0, cols, offset: o0 * n_in });
            o0 += cols;
        }
        let mut data = Vec::with_capacity(n_in * n_out);
        for t in &tiles {
            for k in 0..n_in {
                data.extend((t.o0..t.o0 + t.cols).map(|o| w[o * n_in + k]));
            }
        }
        Self { data, tiles }
    }
}

/// A dense layer for the fast path.
#[derive(Debug, Clone)]
pub(crate) struct DenseF32 {
    /// Panels for tiles of [`TILE_ROWS`] rows.
    multi: Panels,
    /// Panels for single rows.
    single: Panels,
    /// The bias, `[n_out]`.
    b: Vec<f32>,
    n_in: usize,
    n_out: usize,
}

impl DenseF32 {
    /// From a PyTorch-layout weight `w` (`[n_out, n_in]` row-major) and bias `b` (`[n_out]`).
    pub(crate) fn from_torch_layout(w: &[f32], b: &[f32], n_out: usize, n_in: usize) -> Self {
        assert_eq!(w.len(), n_out * n_in, "weight length matches its dims");
        assert_eq!(b.len(), n_out, "bias length matches the output size");
        Self {
            multi: Panels::new(w, n_out, n_in, &MULTI_ROW_COLS),
            single: Panels::new(w, n_out, n_in, &ONE_ROW_COLS),
            b: b.to_vec(),
            n_in,
            n_out,
        }
    }

    /// Output width.
    pub(crate) fn n_out(&self) -> usize {
        self.n_out
    }

    /// Input width.
    pub(crate) fn n_in(&self) -> usize {
        self.n_in
    }

    /// `y = act(x W^T + b)` for `x` `[rows, n_in]` and `y` `[rows, n_out]`, both row-major;
    /// `pack` is working memory of at least `TILE_ROWS * n_in` values.
    #[inline(always)]
    pub(crate) fn forward(&self, x: &[f32], rows: usize, act: Option<Activation>, y: &mut [f32], pack: &mut [f32]) {
        let (n_in, n_out) = (self.n_in, self.n_out);
        let y = &mut y[..rows * n_out];
        let pack = &mut pack[..TILE_ROWS * n_in];
        let mut r0 = 0;
        while r0 + TILE_ROWS <= rows {
            // Transpose the row tile into `[n_in, TILE_ROWS]`.
            for r in 0..TILE_ROWS {
                for (k, v) in x[(r0 + r) * n_in..(r0 + r + 1) * n_in].iter().enumerate() {
                    pack[k * TILE_ROWS + r] = *v;
                }
            }
            let y = &mut y[r0 * n_out..(r0 + TILE_ROWS) * n_out];
            for t in &self.multi.tiles {
                let panel = &self.multi.data[t.offset..t.offset + t.cols * n_in];
                match t.cols {
                    16 => self.tile::<TILE_ROWS, 16>(pack, panel, t.o0, y),
                    8 => self.tile::<TILE_ROWS, 8>(pack, panel, t.o0, y),
                    4 => self.tile::<TILE_ROWS, 4>(pack, panel, t.o0, y),
                    _ => self.tile::<TILE_ROWS, 1>(pack, panel, t.o0, y),
                }
            }
            r0 += TILE_ROWS;
        }
        for r in r0..rows {
            let (x, y) = (&x[r * n_in..(r + 1) * n_in], &mut y[r * n_out..(r + 1) * n_out]);
            for t in &self.single.tiles {
                let panel = &self.single.data[t.offset..t.offset + t.cols * n_in];
                match t.cols {
                    32 => self.tile::<1, 32>(x, panel, t.o0, y),
                    16 => self.tile::<1, 16>(x, panel, t.o0, y),
                    8 => self.tile::<1, 8>(x, panel, t.o0, y),
                    4 => self.tile::<1, 4>(x, panel, t.o0, y),
                    _ => self.tile::<1, 1>(x, panel, t.o0, y),
                }
            }
        }
        // Plain loops, so that they inline into (and vectorize with) the caller's instruction set.
        match act {
            Some(Activation::Tanh) => {
                for v in y.iter_mut() {
                    *v = tanh_f32(*v);
                }
            }
            Some(Activation::Relu) => {
                for v in y.iter_mut() {
                    *v = v.max(0.0);
                }
            }
            None => {}
        }
    }

    /// Columns `o0..o0 + C` of `R` rows, from the packed input `xt` `[n_in, R]` and the tile's
    /// panel `[n_in, C]` into `y` `[R, n_out]`.
    #[inline(always)]
    fn tile<const R: usize, const C: usize>(&self, xt: &[f32], panel: &[f32], o0: usize, y: &mut [f32]) {
        let bias: [f32; C] = self.b[o0..o0 + C].try_into().expect("tile lies inside the layer");
        let mut acc = [bias; R];
        for (xk, wk) in xt.chunks_exact(R).zip(panel.chunks_exact(C)) {
            let xk: &[f32; R] = xk.try_into().expect("chunks of R");
            let wk: &[f32; C] = wk.try_into().expect("chunks of C");
            for r in 0..R {
                for c in 0..C {
                    acc[r][c] += xk[r] * wk[c];
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            y[r * self.n_out + o0..r * self.n_out + o0 + C].copy_from_slice(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious per-output loop, in the order the module docs promise.
    fn reference(w: &[f32], b: &[f32], x: &[f32], rows: usize, n_in: usize, act: Option<Activation>) -> Vec<f32> {
        let n_out = b.len();
        let mut y = Vec::with_capacity(rows * n_out);
        for r in 0..rows {
            for o in 0..n_out {
                let mut s = b[o];
                for k in 0..n_in {
                    s += x[r * n_in + k] * w[o * n_in + k];
                }
                y.push(act.map_or(s, |a| a.apply(s)));
            }
        }
        y
    }

    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 37 + salt * 11) % 23) as f32 - 11.0) * 0.07).collect()
    }

    /// Every tile shape (4 rows by 16, 8, 4 or 1 columns; 1 row by 32, 16, 8, 4 or 1) gives
    /// bitwise the reference.
    #[test]
    fn matches_the_reference_bitwise_for_every_tile_shape() {
        for (n_in, n_out) in [(4, 64), (64, 64), (64, 2), (64, 1), (3, 29), (7, 13), (5, 80), (2, 100)] {
            let (w, b) = (values(n_out * n_in, 1), values(n_out, 2));
            let layer = DenseF32::from_torch_layout(&w, &b, n_out, n_in);
            for rows in [1, 3, 4, 9] {
                let x = values(rows * n_in, 3);
                for act in [None, Some(Activation::Tanh), Some(Activation::Relu)] {
                    let mut y = vec![f32::NAN; rows * n_out];
                    layer.forward(&x, rows, act, &mut y, &mut vec![0.0; TILE_ROWS * n_in]);
                    let want = reference(&w, &b, &x, rows, n_in, act);
                    assert_eq!(y, want, "{n_in}x{n_out}, {rows} rows, {act:?}");
                }
            }
        }
    }
}
