//! Resource attributes: who emitted the records. Read once per VM from Envoy's node (plain
//! `--service-node`/`--service-cluster`, or the metadata Istio's agent puts there), so logs from
//! Kubernetes, VMs and a plain Envoy carry the same names. Configured values always win.

use crate::capture::AttributeSource;
use std::collections::BTreeMap;

/// `service.instance.id`-style attribute naming the VM (one per Envoy worker thread).
pub const VM_ID: &str = "meshlog.vm.id";

/// (attribute, candidate node paths in precedence order).
const FROM_NODE: &[(&str, &[&[&str]])] = &[
    (
        "service.name",
        &[
            &[
                "node",
                "metadata",
                "LABELS",
                "service.istio.io/canonical-name",
            ],
            &["node", "metadata", "LABELS", "app"],
            &["node", "metadata", "WORKLOAD_NAME"],
            &["node", "cluster"],
        ],
    ),
    ("service.namespace", &[&["node", "metadata", "NAMESPACE"]]),
    (
        "service.version",
        &[&[
            "node",
            "metadata",
            "LABELS",
            "service.istio.io/canonical-revision",
        ]],
    ),
    ("service.instance.id", &[&["node", "id"]]),
    ("k8s.namespace.name", &[&["node", "metadata", "NAMESPACE"]]),
    ("k8s.pod.name", &[&["node", "metadata", "NAME"]]),
    ("k8s.cluster.name", &[&["node", "metadata", "CLUSTER_ID"]]),
    (
        "meshlog.workload.name",
        &[&["node", "metadata", "WORKLOAD_NAME"]],
    ),
    ("meshlog.mesh.id", &[&["node", "metadata", "MESH_ID"]]),
];

/// The resource of every batch this VM sends: node-derived attributes, then `configured`
/// (which overrides), then the VM id.
pub fn resource(
    src: &impl AttributeSource,
    configured: &BTreeMap<String, String>,
    vm_id: &str,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, paths) in FROM_NODE {
        let found = paths.iter().find_map(|p| {
            // Envoy serves the node as `xds.node`; older hosts also as a top-level `node`.
            let mut xds = Vec::with_capacity(p.len() + 1);
            xds.push("xds");
            xds.extend_from_slice(p);
            let v = src.property(&xds).or_else(|| src.property(p))?;
            let s = String::from_utf8_lossy(&v).trim().to_owned();
            (!s.is_empty()).then_some(s)
        });
        if let Some(v) = found {
            out.insert((*key).to_owned(), v);
        }
    }
    out.extend(configured.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.insert(VM_ID.to_owned(), vm_id.to_owned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::MapSource;

    #[test]
    fn istio_node_metadata_maps_to_otel_names() {
        let src = MapSource::default()
            .text(
                "node.id",
                "sidecar~10.0.0.7~checkout-7d9f.shop~shop.svc.cluster.local",
            )
            .text("node.cluster", "checkout.shop")
            .text("node.metadata.NAMESPACE", "shop")
            .text("node.metadata.NAME", "checkout-7d9f")
            .text("node.metadata.WORKLOAD_NAME", "checkout")
            .text("node.metadata.CLUSTER_ID", "Kubernetes")
            .text("node.metadata.MESH_ID", "cluster.local")
            .text("node.metadata.LABELS.app", "checkout-app")
            .text(
                "node.metadata.LABELS.service.istio.io/canonical-name",
                "checkout-svc",
            );
        let r = resource(&src, &BTreeMap::new(), "vm1");
        assert_eq!(r["service.name"], "checkout-svc");
        assert_eq!(r["k8s.namespace.name"], "shop");
        assert_eq!(r["k8s.pod.name"], "checkout-7d9f");
        assert_eq!(r["k8s.cluster.name"], "Kubernetes");
        assert_eq!(r["meshlog.mesh.id"], "cluster.local");
        assert_eq!(r["meshlog.workload.name"], "checkout");
        assert_eq!(
            r["service.instance.id"],
            "sidecar~10.0.0.7~checkout-7d9f.shop~shop.svc.cluster.local"
        );
        assert_eq!(r[VM_ID], "vm1");
    }

    #[test]
    fn plain_envoy_uses_the_node_cluster_and_config_wins() {
        let src = MapSource::default()
            .text("node.id", "edge-1")
            .text("node.cluster", "edge");
        let r = resource(&src, &BTreeMap::new(), "vm2");
        assert_eq!(r["service.name"], "edge");
        assert_eq!(r["service.instance.id"], "edge-1");
        assert!(!r.contains_key("k8s.namespace.name"));
        let configured = BTreeMap::from([("service.name".to_owned(), "gateway".to_owned())]);
        assert_eq!(
            resource(&src, &configured, "vm2")["service.name"],
            "gateway"
        );
    }
}
