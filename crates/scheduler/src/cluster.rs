//! Cluster plans: which replicas a job has, and the `TF_CONFIG` each one sees.
//!
//! Scale tiers map to local process sets sized for one machine: BASIC, BASIC_GPU and BASIC_TPU are
//! a master alone; STANDARD_1 a master, 2 workers and 1 parameter server; PREMIUM_1 a master,
//! 4 workers and 2 parameter servers; CUSTOM what the job says.

use kiln_api::ScaleTier;
use kiln_api::job::{ReplicaConfig, TrainingInput};
use serde_json::{Value, json};

/// ML (training) units per hour by machine type: ML Engine's newer pricing table
/// (api-surface.md §A.12); older names take their older figures where no newer one exists.
pub const MACHINE_UNITS: &[(&str, f64)] = &[
    ("standard", 0.3878),
    ("large_model", 0.9665),
    ("complex_model_s", 0.5788),
    ("complex_model_m", 1.1576),
    ("complex_model_l", 2.3151),
    ("standard_gpu", 1.6939),
    ("complex_model_m_gpu", 7.6278),
    ("complex_model_l_gpu", 15.2555),
    ("standard_p100", 5.4824),
    ("complex_model_m_p100", 19.6653),
    ("standard_v100", 8.5216),
    ("large_model_v100", 8.8005),
    ("complex_model_m_v100", 31.822),
    ("complex_model_l_v100", 63.6441),
    ("cloud_tpu", 13.4082),
    ("n1-standard-4", 0.3878),
    ("n1-standard-8", 0.7755),
    ("n1-standard-16", 1.551),
    ("n1-standard-32", 3.102),
    ("n1-standard-64", 6.2041),
    ("n1-standard-96", 9.3061),
];

/// ML units per hour of a machine type.
pub fn units_per_hour(machine_type: &str) -> Option<f64> {
    MACHINE_UNITS
        .iter()
        .find(|(name, _)| *name == machine_type)
        .map(|(_, units)| *units)
}

/// CPUs, memory in MB and GPUs of each machine type, as ML Engine's machines had them; a cluster
/// executor asks its engine for these per replica.
const MACHINE_RESOURCES: &[(&str, u32, u64, u32)] = &[
    ("standard", 4, 15_000, 0),
    ("large_model", 8, 52_000, 0),
    ("complex_model_s", 8, 7_200, 0),
    ("complex_model_m", 16, 14_400, 0),
    ("complex_model_l", 32, 28_800, 0),
    ("standard_gpu", 8, 30_000, 1),
    ("complex_model_m_gpu", 16, 60_000, 4),
    ("complex_model_l_gpu", 32, 120_000, 8),
    ("standard_p100", 8, 30_000, 1),
    ("complex_model_m_p100", 16, 60_000, 4),
    ("standard_v100", 8, 30_000, 1),
    ("large_model_v100", 8, 52_000, 1),
    ("complex_model_m_v100", 16, 60_000, 4),
    ("complex_model_l_v100", 32, 120_000, 8),
    ("cloud_tpu", 4, 15_000, 0),
    ("n1-standard-4", 4, 15_000, 0),
    ("n1-standard-8", 8, 30_000, 0),
    ("n1-standard-16", 16, 60_000, 0),
    ("n1-standard-32", 32, 120_000, 0),
    ("n1-standard-64", 64, 240_000, 0),
    ("n1-standard-96", 96, 360_000, 0),
];

/// What one replica asks of the node it runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// CPUs.
    pub cpus: u32,
    /// Memory in MB.
    pub memory_mb: u64,
    /// GPUs.
    pub gpus: u32,
}

impl std::fmt::Display for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CPUs, {} MB of memory and {} GPUs",
            self.cpus, self.memory_mb, self.gpus
        )
    }
}

impl Resources {
    /// The most of each resource over `all`: the largest node, or the most any replica asks.
    pub fn largest(all: impl IntoIterator<Item = Resources>) -> Resources {
        all.into_iter()
            .fold(Resources::default(), |most, one| Resources {
                cpus: most.cpus.max(one.cpus),
                memory_mb: most.memory_mb.max(one.memory_mb),
                gpus: most.gpus.max(one.gpus),
            })
    }

    /// Whether a node with `self` can run a replica that asks for `need`.
    pub fn holds(&self, need: &Resources) -> bool {
        self.cpus >= need.cpus && self.memory_mb >= need.memory_mb && self.gpus >= need.gpus
    }
}

/// The role of a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskType {
    /// The primary replica (`master`, or `chief` with `useChiefInTfConfig`).
    Master,
    /// A worker.
    Worker,
    /// A parameter server.
    Ps,
    /// An evaluator (not part of the TF cluster).
    Evaluator,
}

impl TaskType {
    /// The name in `TF_CONFIG` and in task names.
    pub fn name(self, use_chief: bool) -> &'static str {
        match self {
            TaskType::Master if use_chief => "chief",
            TaskType::Master => "master",
            TaskType::Worker => "worker",
            TaskType::Ps => "ps",
            TaskType::Evaluator => "evaluator",
        }
    }
}

/// One replica of a job.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaPlan {
    /// Role.
    pub task: TaskType,
    /// Index within its role.
    pub index: usize,
    /// Machine type (for ML units).
    pub machine_type: String,
    /// Its replica settings (the role's config, or the master's).
    pub config: ReplicaConfig,
}

impl ReplicaPlan {
    /// What it asks of a node: its machine type's CPUs and memory, and its machine type's GPUs
    /// or, when given, `acceleratorConfig.count`.
    pub fn resources(&self) -> Resources {
        let (cpus, memory_mb, gpus) = MACHINE_RESOURCES
            .iter()
            .find(|(name, ..)| *name == self.machine_type)
            .map_or((1, 1_000, 0), |(_, cpus, memory, gpus)| {
                (*cpus, *memory, *gpus)
            });
        let count = self
            .config
            .accelerator_config
            .as_ref()
            .and_then(|config| config.get("count"))
            .and_then(|count| match count {
                Value::String(text) => text.parse().ok(),
                other => other.as_u64().and_then(|count| u32::try_from(count).ok()),
            });
        Resources {
            cpus,
            memory_mb,
            gpus: count.unwrap_or(gpus),
        }
    }

    /// ML Engine's task name: `master-replica-0`, `worker-replica-1`, ...
    pub fn task_name(&self) -> String {
        format!("{}-replica-{}", self.task.name(false), self.index)
    }
}

/// Plans the replicas of `input`, collecting every problem with the cluster fields.
pub fn plan(input: &TrainingInput) -> Result<Vec<ReplicaPlan>, Vec<String>> {
    let mut problems = Vec::new();
    let master_config = input.master_config.clone().unwrap_or_default();
    let (master_type, workers, parameter_servers, evaluators) = match input.scale_tier {
        ScaleTier::Basic | ScaleTier::BasicTpu => ("standard".to_string(), 0, 0, 0),
        ScaleTier::BasicGpu => ("standard_gpu".to_string(), 0, 0, 0),
        ScaleTier::Standard1 => ("standard".to_string(), 2, 1, 0),
        ScaleTier::Premium1 => ("standard".to_string(), 4, 2, 0),
        ScaleTier::Custom => {
            if input.master_type.is_empty() {
                problems.push("Field: training_input.master_type Error: masterType is required when scaleTier is CUSTOM".to_string());
            }
            (
                input.master_type.clone(),
                input.worker_count,
                input.parameter_server_count,
                input.evaluator_count,
            )
        }
    };
    let roles = [
        (
            TaskType::Worker,
            workers,
            &input.worker_type,
            &input.worker_config,
            "worker",
        ),
        (
            TaskType::Ps,
            parameter_servers,
            &input.parameter_server_type,
            &input.parameter_server_config,
            "parameter_server",
        ),
        (
            TaskType::Evaluator,
            evaluators,
            &input.evaluator_type,
            &input.evaluator_config,
            "evaluator",
        ),
    ];
    let mut replicas = vec![ReplicaPlan {
        task: TaskType::Master,
        index: 0,
        machine_type: master_type.clone(),
        config: master_config.clone(),
    }];
    for (task, count, machine_type, config, field) in roles {
        if !(0..=64).contains(&count) {
            problems.push(format!(
                "Field: training_input.{field}_count Error: must be between 0 and 64, got {count}"
            ));
            continue;
        }
        let machine_type = match (input.scale_tier, machine_type.is_empty()) {
            (ScaleTier::Custom, true) if count > 0 => {
                problems.push(format!("Field: training_input.{field}_type Error: {field}Type is required when {field}Count > 0"));
                continue;
            }
            (ScaleTier::Custom, false) => machine_type.clone(),
            _ => master_type.clone(),
        };
        for index in 0..count as usize {
            replicas.push(ReplicaPlan {
                task,
                index,
                machine_type: machine_type.clone(),
                config: config.clone().unwrap_or_else(|| master_config.clone()),
            });
        }
    }
    for replica in &replicas {
        if !replica.machine_type.is_empty() && units_per_hour(&replica.machine_type).is_none() {
            let known: Vec<&str> = MACHINE_UNITS.iter().map(|(name, _)| *name).collect();
            problems.push(format!(
                "machine type {:?} of {} is unknown; known types: {}",
                replica.machine_type,
                replica.task_name(),
                known.join(", ")
            ));
        }
    }
    problems.dedup();
    match problems.is_empty() {
        true => Ok(replicas),
        false => Err(problems),
    }
}

/// One member of a running job's cluster: its role, index and the address it listens at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Role.
    pub task: TaskType,
    /// Index within its role.
    pub index: usize,
    /// `host:port` of its TF server.
    pub address: String,
}

/// `TF_CONFIG`'s `cluster`: each role's addresses in index order (evaluators are not part of it).
pub fn cluster_spec(members: &[Member], use_chief: bool) -> Value {
    let mut cluster = serde_json::Map::new();
    for member in members
        .iter()
        .filter(|member| member.task != TaskType::Evaluator)
    {
        let entry = cluster
            .entry(member.task.name(use_chief))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(addresses) = entry {
            addresses.push(Value::String(member.address.clone()));
        }
    }
    Value::Object(cluster)
}

/// What makes one job's `TF_CONFIG` (api-surface.md §A.10) besides the member it is for.
#[derive(Debug, Clone, Copy)]
pub struct TfJob<'a> {
    /// The job's `trainingInput` as the API shows it (`TF_CONFIG`'s `job`).
    pub input: &'a Value,
    /// The job id (`task.cloud` is `kiln-<job id>`).
    pub job_id: &'a str,
    /// The trial a tuning job's replica belongs to.
    pub trial: Option<&'a str>,
    /// `useChiefInTfConfig`: the master is called `chief`.
    pub use_chief: bool,
}

/// The `TF_CONFIG` of `members[rank]`, as ML Engine sets it.
pub fn tf_config(members: &[Member], rank: usize, job: TfJob<'_>) -> Value {
    let member = &members[rank];
    let mut task = json!({
        "type": member.task.name(job.use_chief),
        "index": member.index,
        "cloud": format!("kiln-{}", job.job_id),
    });
    if let Some(trial) = job.trial {
        task["trial"] = Value::String(trial.to_string());
    }
    json!({
        "cluster": cluster_spec(members, job.use_chief),
        "task": task,
        "job": job.input,
        "environment": "cloud",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(workers: i64, parameter_servers: i64) -> TrainingInput {
        TrainingInput {
            scale_tier: ScaleTier::Custom,
            master_type: "complex_model_m".into(),
            worker_type: "standard".into(),
            worker_count: workers,
            parameter_server_type: "large_model".into(),
            parameter_server_count: parameter_servers,
            evaluator_type: "standard".into(),
            evaluator_count: 1,
            ..TrainingInput::default()
        }
    }

    #[test]
    fn tiers_and_custom_counts() {
        assert_eq!(plan(&TrainingInput::default()).unwrap().len(), 1);
        let standard = plan(&TrainingInput {
            scale_tier: ScaleTier::Standard1,
            ..TrainingInput::default()
        })
        .unwrap();
        let names: Vec<String> = standard.iter().map(ReplicaPlan::task_name).collect();
        assert_eq!(
            names,
            [
                "master-replica-0",
                "worker-replica-0",
                "worker-replica-1",
                "ps-replica-0"
            ]
        );
        let replicas = plan(&custom(2, 1)).unwrap();
        assert_eq!(replicas.len(), 5);
        assert_eq!(replicas[3].machine_type, "large_model");
    }

    #[test]
    fn invalid_clusters_name_their_fields() {
        let mut input = custom(2, 0);
        input.master_type.clear();
        input.worker_type.clear();
        input.evaluator_type = "huge_machine".into();
        let problems = plan(&input).unwrap_err().join("\n");
        assert!(problems.contains("master_type"), "{problems}");
        assert!(problems.contains("worker_type"), "{problems}");
        assert!(problems.contains("\"huge_machine\""), "{problems}");
    }

    #[test]
    fn tf_config_has_the_cluster_without_evaluators() {
        let input = custom(2, 1);
        let members: Vec<Member> = plan(&input)
            .unwrap()
            .iter()
            .enumerate()
            .map(|(rank, replica)| Member {
                task: replica.task,
                index: replica.index,
                address: format!("10.0.0.{rank}:2222"),
            })
            .collect();
        let job_input = serde_json::to_value(&input).unwrap();
        let job = TfJob {
            input: &job_input,
            job_id: "job1",
            trial: Some("3"),
            use_chief: false,
        };
        let config = tf_config(&members, 2, job);
        assert_eq!(config["task"]["type"], "worker");
        assert_eq!(config["task"]["index"], 1);
        assert_eq!(config["task"]["trial"], "3");
        assert_eq!(config["task"]["cloud"], "kiln-job1");
        assert_eq!(config["environment"], "cloud");
        assert_eq!(config["job"]["workerCount"], "2");
        assert_eq!(
            config["cluster"]["worker"],
            json!(["10.0.0.1:2222", "10.0.0.2:2222"])
        );
        assert_eq!(config["cluster"]["ps"], json!(["10.0.0.3:2222"]));
        assert!(config["cluster"].get("evaluator").is_none());
        let chief = tf_config(
            &members,
            0,
            TfJob {
                use_chief: true,
                ..job
            },
        );
        assert_eq!(chief["task"]["type"], "chief");
        assert_eq!(chief["cluster"]["chief"], json!(["10.0.0.0:2222"]));
    }
}
