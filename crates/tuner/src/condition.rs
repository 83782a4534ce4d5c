//! Conditional parameters: a parameter that takes a value only when an earlier one (its parent)
//! takes one of some values, as Vizier's `childParameterSpecs` describe. Children may have children.
//!
//! Whether each parameter is active follows from the values in order, since a parent always comes
//! before its children. An inactive parameter takes [`Value::Inactive`]; in a [`Point`] its
//! coordinate is fixed (the middle of its axis, or its first category), so two trials that both
//! lack it do not differ there, and the parent's own coordinate tells the GP the branches apart.
//!
//! [`Point`]: crate::space::Point

use crate::space::{Domain, Param, Value};

/// When a parameter is active: its parent is, and takes one of `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Index of the parent among the space's parameters; it comes before the child.
    pub parent: usize,
    /// The parent's values that make the child active (numbers for INTEGER and DISCRETE parents,
    /// categories for CATEGORICAL ones).
    pub values: Vec<Value>,
}

/// Whether `param` is active given the values of the parameters before it, where an inactive one
/// is [`Value::Inactive`] (which no condition lists).
pub fn holds(param: &Param, earlier: &[Value]) -> bool {
    param.condition.as_ref().is_none_or(|condition| {
        earlier
            .get(condition.parent)
            .is_some_and(|value| condition.values.contains(value))
    })
}

/// Which parameters are active given values in parameter order (the values of inactive ones are
/// not read).
pub fn active(params: &[Param], values: &[Value]) -> Vec<bool> {
    let mut seen: Vec<Value> = Vec::with_capacity(params.len());
    params
        .iter()
        .zip(values)
        .map(|(param, value)| {
            let on = holds(param, &seen);
            seen.push(if on { value.clone() } else { Value::Inactive });
            on
        })
        .collect()
}

/// What is wrong with the condition of parameter `index`, if anything.
pub fn problems(params: &[Param], index: usize) -> Vec<String> {
    let Some(condition) = &params[index].condition else {
        return Vec::new();
    };
    if condition.parent >= index {
        return vec!["a conditional parameter must come after its parent".into()];
    }
    let parent = &params[condition.parent];
    let mut problems = Vec::new();
    if matches!(parent.domain, Domain::Double { .. }) {
        problems.push(format!(
            "its parent {:?} is DOUBLE: only INTEGER, DISCRETE and CATEGORICAL parameters have children",
            parent.name
        ));
        return problems;
    }
    if condition.values.is_empty() {
        problems.push("the parent values that make it active must not be empty".into());
    }
    for value in &condition.values {
        if !parent.domain.holds(value) {
            problems.push(format!(
                "the parent {:?} cannot take the value {value}",
                parent.name
            ));
        }
    }
    problems
}
