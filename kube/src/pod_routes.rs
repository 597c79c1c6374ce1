//! Every node's pod subnet and where it is reached (`podCIDR via InternalIP`),
//! as the Nodes in the cluster say: what the host-gw pod network routes by.

/// One Node's pod subnet and where it is reached.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodRoute {
    pub node: String,
    pub pod_cidr: String,
    /// The Node's InternalIP.
    pub via: String,
}

/// The pod route of every Node that has a podCIDR and an InternalIP, listed
/// with `client`: credentials that may list Nodes (from Kubernetes 1.32 not a
/// node's own, which ask `kubeboot serve` instead: `GET /v1/pod-routes`).
pub async fn list_routes(client: &kube::Client) -> Result<Vec<PodRoute>, String> {
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let list = nodes
        .list(&Default::default())
        .await
        .map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 403 => format!(
                "{}: these credentials may not list Nodes. From Kubernetes 1.32 (the Node \
             authorizer with selectors) a node's own credentials read only its own Node: \
             a node whose document came from `kubeboot serve` asks serve instead; else give \
             credentials that may list Nodes (`kubeboot pod-routes --kubeconfig`)",
                crate::client::describe(&e)
            ),
            _ => crate::client::describe(&e),
        })?;
    Ok(list.items.iter().filter_map(route_of).collect())
}

fn route_of(n: &k8s_openapi::api::core::v1::Node) -> Option<PodRoute> {
    let via = n
        .status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .clone();
    Some(PodRoute {
        node: n.metadata.name.clone()?,
        pod_cidr: n.spec.as_ref()?.pod_cidr.clone()?,
        via,
    })
}
