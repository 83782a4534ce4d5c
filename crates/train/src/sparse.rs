//! Row-sparse optimizers for Kiln's host-side tables.
//!
//! A step touches only the rows a batch looked up, so its cost is O(rows touched), not
//! O(table size) (the reason these tables are not burn parameters: see `kiln_model::table`).
//! The update rules follow TensorFlow's: lazy Adam as `LazyAdamOptimizer` / PyTorch's `SparseAdam`
//! (moments of untouched rows do not decay), Adagrad, and FTRL-Proximal (McMahan et al. 2013), the
//! default of the canned estimators' linear part.

use kiln_model::Table;
use rustc_hash::FxHashMap;

/// An optimizer for a host-side table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SparseOptimizer {
    /// Lazy Adam.
    Adam {
        /// Step size.
        learning_rate: f32,
    },
    /// Adagrad, accumulators starting at 0.1 as in TensorFlow.
    Adagrad {
        /// Step size.
        learning_rate: f32,
    },
    /// FTRL-Proximal with L1 and L2 regularisation.
    Ftrl {
        /// Step size (alpha).
        learning_rate: f32,
        /// L1 regularisation strength.
        l1: f32,
        /// L2 regularisation strength.
        l2: f32,
    },
}

const ADAM_BETA1: f32 = 0.9;
const ADAM_BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-8;
const INITIAL_ACCUMULATOR: f32 = 0.1;

/// A table with its optimizer state (two values per weight).
#[derive(Debug, Clone)]
pub struct SparseTable {
    /// The weights.
    pub table: Table,
    optimizer: SparseOptimizer,
    /// Adam: first moment. FTRL: z. Adagrad: unused.
    first: Vec<f32>,
    /// Adam: second moment. FTRL: n. Adagrad: accumulator.
    second: Vec<f32>,
    step: i32,
}

impl SparseTable {
    /// Wraps `table` with fresh optimizer state.
    pub fn new(table: Table, optimizer: SparseOptimizer) -> Self {
        let size = table.data.len();
        let initial = match optimizer {
            SparseOptimizer::Adam { .. } => 0.0,
            SparseOptimizer::Adagrad { .. } | SparseOptimizer::Ftrl { .. } => INITIAL_ACCUMULATOR,
        };
        let first = match optimizer {
            SparseOptimizer::Adagrad { .. } => Vec::new(),
            _ => vec![0.0; size],
        };
        Self {
            table,
            optimizer,
            first,
            second: vec![initial; size],
            step: 0,
        }
    }

    /// The optimizer state, for a checkpoint: the two per-weight slots (empty when unused).
    pub fn state(&self) -> (&[f32], &[f32]) {
        (&self.first, &self.second)
    }

    /// Restores the state a checkpoint saved after `step` steps; the slots must be this table's size.
    pub fn restore(
        &mut self,
        first: Vec<f32>,
        second: Vec<f32>,
        step: usize,
    ) -> Result<(), String> {
        if first.len() != self.first.len() || second.len() != self.second.len() {
            return Err(format!(
                "optimizer state of {} and {} values for a table of {} weights",
                first.len(),
                second.len(),
                self.table.data.len()
            ));
        }
        self.first = first;
        self.second = second;
        self.step = i32::try_from(step).unwrap_or(i32::MAX);
        Ok(())
    }

    /// Applies one step of summed gradients for the touched rows.
    pub fn apply(&mut self, gradients: &RowGradients) {
        self.step += 1;
        let dim = self.table.dim;
        // Per-step constants hoisted out of the per-element loop, which then vectorises.
        let adam_corrections = (
            1.0 - ADAM_BETA1.powi(self.step),
            1.0 - ADAM_BETA2.powi(self.step),
        );
        for (slot, &row) in gradients.rows.iter().enumerate() {
            let gradient = &gradients.values[slot * dim..(slot + 1) * dim];
            let span = row * dim..(row + 1) * dim;
            let weights = &mut self.table.data[span.clone()];
            // Adagrad keeps no first slot.
            let first = self.first.get_mut(span.clone()).unwrap_or_default();
            let second = &mut self.second[span];
            match self.optimizer {
                SparseOptimizer::Adam { learning_rate } => {
                    let (c1, c2) = adam_corrections;
                    for (((w, m), v), &g) in weights.iter_mut().zip(first).zip(second).zip(gradient)
                    {
                        *m = ADAM_BETA1 * *m + (1.0 - ADAM_BETA1) * g;
                        *v = ADAM_BETA2 * *v + (1.0 - ADAM_BETA2) * g * g;
                        let (m_hat, v_hat) = (*m / c1, *v / c2);
                        *w -= learning_rate * m_hat / (v_hat.sqrt() + EPSILON);
                    }
                }
                SparseOptimizer::Adagrad { learning_rate } => {
                    for ((w, accumulator), &g) in weights.iter_mut().zip(second).zip(gradient) {
                        *accumulator += g * g;
                        *w -= learning_rate * g / (accumulator.sqrt() + EPSILON);
                    }
                }
                SparseOptimizer::Ftrl {
                    learning_rate,
                    l1,
                    l2,
                } => {
                    for (((w, z), n), &g) in weights.iter_mut().zip(first).zip(second).zip(gradient)
                    {
                        let n_new = *n + g * g;
                        let sigma = (n_new.sqrt() - n.sqrt()) / learning_rate;
                        *z += g - sigma * *w;
                        *n = n_new;
                        *w = if z.abs() <= l1 {
                            0.0
                        } else {
                            -(*z - z.signum() * l1) / (n.sqrt() / learning_rate + 2.0 * l2)
                        };
                    }
                }
            }
        }
    }
}

/// Gradients of a batch summed per distinct row.
#[derive(Debug)]
pub struct RowGradients {
    dim: usize,
    /// Slot of each row seen (Fx: the keys are row numbers, not attacker-chosen, and SipHash
    /// showed in a Criteo step's profile).
    index: FxHashMap<usize, usize>,
    rows: Vec<usize>,
    values: Vec<f32>,
}

impl RowGradients {
    /// An empty accumulator for rows of width `dim`, with room for `rows` distinct rows (a batch's
    /// size, say).
    pub fn with_capacity(dim: usize, rows: usize) -> Self {
        Self {
            dim,
            index: FxHashMap::with_capacity_and_hasher(rows, Default::default()),
            rows: Vec::with_capacity(rows),
            values: Vec::with_capacity(rows * dim),
        }
    }

    /// Adds `gradient` to `row`.
    pub fn add(&mut self, row: usize, gradient: &[f32]) {
        let slot = *self.index.entry(row).or_insert_with(|| {
            self.rows.push(row);
            self.values.extend(std::iter::repeat_n(0.0, self.dim));
            self.rows.len() - 1
        });
        for (sum, value) in self.values[slot * self.dim..(slot + 1) * self.dim]
            .iter_mut()
            .zip(gradient)
        {
            *sum += value;
        }
    }

    /// Number of distinct rows touched.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row was touched.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimise(optimizer: SparseOptimizer) -> SparseTable {
        // Pull row 1 of a 3-row table towards 2.0 with the gradient of (w - 2)^2; rows 0 and 2
        // are never touched and must stay exactly as they were.
        let mut table = SparseTable::new(
            Table {
                rows: 3,
                dim: 1,
                data: vec![5.0, 0.0, -5.0],
            },
            optimizer,
        );
        for _ in 0..3000 {
            let mut gradients = RowGradients::with_capacity(1, 0);
            let w = table.table.data[1];
            gradients.add(1, &[w - 2.0]);
            gradients.add(1, &[w - 2.0]);
            table.apply(&gradients);
        }
        table
    }

    #[test]
    fn every_optimizer_converges_and_leaves_untouched_rows_alone() {
        for optimizer in [
            SparseOptimizer::Adam {
                learning_rate: 0.01,
            },
            SparseOptimizer::Adagrad { learning_rate: 0.5 },
            SparseOptimizer::Ftrl {
                learning_rate: 0.5,
                l1: 0.0,
                l2: 0.0,
            },
        ] {
            let table = minimise(optimizer);
            assert!(
                (table.table.data[1] - 2.0).abs() < 0.05,
                "{optimizer:?}: {:?}",
                table.table.data
            );
            assert_eq!(table.table.data[0], 5.0);
            assert_eq!(table.table.data[2], -5.0);
        }
    }

    #[test]
    fn ftrl_l1_keeps_weak_weights_at_zero() {
        let table = minimise(SparseOptimizer::Ftrl {
            learning_rate: 0.5,
            l1: 1e6,
            l2: 0.0,
        });
        assert_eq!(table.table.data[1], 0.0);
    }

    #[test]
    fn gradients_of_repeated_rows_are_summed() {
        let mut gradients = RowGradients::with_capacity(2, 0);
        gradients.add(7, &[1.0, 2.0]);
        gradients.add(3, &[1.0, 1.0]);
        gradients.add(7, &[0.5, 0.5]);
        assert_eq!(gradients.len(), 2);
        assert_eq!(gradients.rows, vec![7, 3]);
        assert_eq!(gradients.values, vec![1.5, 2.5, 1.0, 1.0]);
    }
}
