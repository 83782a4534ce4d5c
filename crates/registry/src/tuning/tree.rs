//! Conditional parameters as the API nests them (`childParameterSpecs`, each child naming its
//! parent's values in the `parent*Values` field of the parent's type), flattened for the tuner:
//! every parameter before its children, each child's condition pointing at its parent's index.
//! Studies and tuning jobs write parameters differently but nest them alike, through [`Spec`].

use kiln_api::job::ParameterSpec;
use kiln_api::study::{CategoricalValueSpec, DiscreteValueSpec, IntValues, StudyParameterSpec};
use kiln_tuner::{Condition, Domain, Param, Value};

/// A parameter spec that may have children.
pub trait Spec: Sized {
    /// Its children.
    fn children(&self) -> &[Self];
    /// The parent values it names, by the parent's type.
    fn parent_values(&self) -> ParentValues<'_>;
}

/// The parent values a child names: for a CATEGORICAL, an INTEGER and a DISCRETE parent.
pub type ParentValues<'a> = (
    Option<&'a CategoricalValueSpec>,
    Option<&'a IntValues>,
    Option<&'a DiscreteValueSpec>,
);

/// Reads one spec's own name and domain, given its field path; every problem names its field.
pub type ReadParam<'a, S> = &'a dyn Fn(&S, &str) -> Result<Param, Vec<String>>;

/// Both API types nest children and name parent values under the same field names.
macro_rules! nested_spec {
    ($spec:ty) => {
        impl Spec for $spec {
            fn children(&self) -> &[Self] {
                &self.child_parameter_specs
            }

            fn parent_values(&self) -> ParentValues<'_> {
                (
                    self.parent_categorical_values.as_ref(),
                    self.parent_int_values.as_ref(),
                    self.parent_discrete_values.as_ref(),
                )
            }
        }
    };
}

nested_spec!(ParameterSpec);
nested_spec!(StudyParameterSpec);

/// The flattened parameters, each with its field path (`{field}[1].child_parameter_specs[0]`), or
/// every problem found, each naming its field.
pub fn flatten<S: Spec>(
    specs: &[S],
    field: &str,
    param: ReadParam<'_, S>,
) -> Result<(Vec<Param>, Vec<String>), Vec<String>> {
    let mut flat = Flat {
        params: Vec::new(),
        fields: Vec::new(),
        problems: Vec::new(),
    };
    for (index, spec) in specs.iter().enumerate() {
        flat.add(spec, format!("{field}[{index}]"), None, param);
    }
    if flat.problems.is_empty() {
        Ok((flat.params, flat.fields))
    } else {
        Err(flat.problems)
    }
}

struct Flat {
    params: Vec<Param>,
    fields: Vec<String>,
    problems: Vec<String>,
}

impl Flat {
    fn add<S: Spec>(
        &mut self,
        spec: &S,
        field: String,
        parent: Option<usize>,
        param: ReadParam<'_, S>,
    ) {
        let mut found = match param(spec, &field) {
            Ok(found) => found,
            Err(problems) => {
                self.problems.extend(problems);
                return;
            }
        };
        let named = spec.parent_values();
        let names_a_parent = named.0.is_some() || named.1.is_some() || named.2.is_some();
        match parent {
            None if names_a_parent => self.problems.push(format!(
                "Field: {field} Error: only a child parameter (in childParameterSpecs) names parent values"
            )),
            None => {}
            Some(parent) => match condition(parent, &self.params[parent].domain, named) {
                Ok(condition) => found.condition = Some(condition),
                Err(message) => self.problems.push(format!("Field: {field} Error: {message}")),
            },
        }
        let at = self.params.len();
        self.params.push(found);
        self.fields.push(field.clone());
        for (index, child) in spec.children().iter().enumerate() {
            self.add(
                child,
                format!("{field}.child_parameter_specs[{index}]"),
                Some(at),
                param,
            );
        }
    }
}

/// The condition a child's parent values describe: exactly the field of its parent's type.
fn condition(
    parent: usize,
    domain: &Domain,
    (categorical, int, discrete): ParentValues<'_>,
) -> Result<Condition, String> {
    let values = match (domain, categorical, int, discrete) {
        (Domain::Categorical { .. }, Some(given), None, None) => given
            .values
            .iter()
            .map(|value| Value::Category(value.clone()))
            .collect(),
        (Domain::Integer { .. }, None, Some(given), None) => given
            .values
            .iter()
            .map(|value| Value::Number(*value as f64))
            .collect(),
        (Domain::Discrete { .. }, None, None, Some(given)) => {
            given.values.iter().copied().map(Value::Number).collect()
        }
        (Domain::Double { .. }, ..) => {
            return Err("a DOUBLE parameter cannot have child parameters".into());
        }
        (domain, ..) => {
            let expected = match domain {
                Domain::Categorical { .. } => "parentCategoricalValues",
                Domain::Integer { .. } => "parentIntValues",
                _ => "parentDiscreteValues",
            };
            return Err(format!(
                "a child parameter names its parent's values in {expected} alone"
            ));
        }
    };
    Ok(Condition { parent, values })
}

/// A stored trial's values in the tuner's terms, read in parameter order: `read` gives an active
/// parameter's value; an inactive one is [`Value::Inactive`] whatever is stored. `None` if an
/// active parameter has no value.
pub fn values(
    params: &[Param],
    mut read: impl FnMut(&Param) -> Option<Value>,
) -> Option<Vec<Value>> {
    let mut values = Vec::with_capacity(params.len());
    for param in params {
        let value = if kiln_tuner::condition::holds(param, &values) {
            read(param)?
        } else {
            Value::Inactive
        };
        values.push(value);
    }
    Some(values)
}
