//! Host-side embedding tables.
//!
//! Hash-bucket and vocabulary tables live outside burn on purpose, a design decision made by
//! measurement: burn's `Embedding` materialises a dense gradient of the whole table and its
//! optimizers touch every row each step. Kiln gathers the rows a batch looks up into a small
//! tensor, lets burn backpropagate into it, and updates only those rows (see `kiln-train`).

/// A `rows × dim` table of f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Number of rows (ids).
    pub rows: usize,
    /// Width of each row.
    pub dim: usize,
    /// `rows * dim` values.
    pub data: Vec<f32>,
}

impl Table {
    /// A table filled with zeros.
    pub fn zeros(rows: usize, dim: usize) -> Self {
        Self {
            rows,
            dim,
            data: vec![0.0; rows * dim],
        }
    }

    /// A table filled by `init`, called once per value in order.
    pub fn from_fn(rows: usize, dim: usize, init: impl FnMut() -> f32) -> Self {
        let mut init = init;
        Self {
            rows,
            dim,
            data: (0..rows * dim).map(|_| init()).collect(),
        }
    }

    /// One row.
    pub fn row(&self, id: usize) -> &[f32] {
        &self.data[id * self.dim..(id + 1) * self.dim]
    }

    /// One row, mutable.
    pub fn row_mut(&mut self, id: usize) -> &mut [f32] {
        &mut self.data[id * self.dim..(id + 1) * self.dim]
    }
}
