//! One generation with decisions per workload (how the store reviews a namespace) gives exactly
//! what generating each workload alone with its own decisions gives.

use std::collections::BTreeSet;

use flowgate::model::WorkloadRef;
use flowgate::offline::{Inputs, observe};
use flowgate::policy::generate::{Decisions, Options, generate, targets, to_yaml};

#[test]
fn decisions_per_workload_in_one_generation_equal_one_generation_per_workload() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/java-app");
    let obs = observe(&Inputs {
        inventory: vec![format!("{fixture}/inventory.json").into()],
        flows: vec![format!("{fixture}/flows.ndjson")],
        ..Default::default()
    })
    .unwrap();
    let w = |s: &str| -> WorkloadRef { s.parse().unwrap() };
    let javaapp = w("deployment/example-java-app/example-java-app-javaapp");
    let cassandra = w("deployment/example-java-app/example-java-app-cassandra");
    let base = Options { namespaces: Some(BTreeSet::from(["example-java-app".to_string()])), ..Default::default() };
    // javaapp drops cassandra and trusts the external API; cassandra drops javaapp; the rest none.
    let mut per_workload = std::collections::BTreeMap::new();
    per_workload.insert(
        javaapp.clone(),
        Decisions {
            exclude: [format!("deployment/{}/{}", cassandra.namespace, cassandra.name).parse().unwrap()].into(),
            trust: ["192.229.173.0/24".parse().unwrap()].into(),
            ..Default::default()
        },
    );
    per_workload.insert(
        cassandra.clone(),
        Decisions {
            exclude: [format!("deployment/{}/{}", javaapp.namespace, javaapp.name).parse().unwrap()].into(),
            ..Default::default()
        },
    );

    let together =
        generate(&obs.inventory, &obs.connections, &Options { per_workload: per_workload.clone(), ..base.clone() });

    let all = targets(&obs.connections.catalog, &obs.inventory, &base);
    assert!(all.len() >= 5, "{all:?}");
    let (mut policies, mut review) = (Vec::new(), Vec::new());
    for t in &all {
        let opts = Options {
            workloads: Some(BTreeSet::from([t.clone()])),
            decisions: per_workload.get(t).cloned().unwrap_or_default(),
            ..base.clone()
        };
        let g = generate(&obs.inventory, &obs.connections, &opts);
        policies.extend(g.policies);
        review.extend(g.review);
    }
    review.sort_by(|a, b| (&a.workload, a.direction, &a.key).cmp(&(&b.workload, b.direction, &b.key)));
    assert_eq!(to_yaml(&together.policies).unwrap(), to_yaml(&policies).unwrap());
    assert_eq!(format!("{:?}", together.review), format!("{review:?}"));
    // The decisions did something: javaapp's policy trusts the CIDR, and some rows are excluded.
    assert!(to_yaml(&together.policies).unwrap().contains("192.229.173.0/24"));
    assert!(together.review.iter().any(|r| r.workload == cassandra && format!("{:?}", r.status).contains("Excluded")));
}
