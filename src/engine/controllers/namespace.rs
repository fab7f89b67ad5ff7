//! The namespace controller: a namespace being deleted has everything in it deleted, and is
//! removed once it is empty. Also the service-account controller's part: every active
//! namespace has a `default` ServiceAccount (pods without `serviceAccountName` run as it).

use serde_json::json;

use super::{Change, Changes};
use crate::engine::clock::Millis;
use crate::engine::doc;
use crate::engine::store::State;

/// One pass over terminating namespaces.
pub fn sync(state: &State, _now: Millis, out: &mut Changes) {
    for stored in state.kind("Namespace").values() {
        let ns_doc = &stored.doc;
        if !doc::is_deleting(ns_doc) {
            let ns = doc::name(ns_doc);
            if state.get("ServiceAccount", ns, "default").is_none() {
                out.push(Change::Create {
                    kind: "ServiceAccount",
                    doc: json!({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "default", "namespace": ns}}),
                    sim: None,
                    owner: None,
                });
            }
            continue;
        }
        let ns = doc::name(ns_doc);
        let mut remaining = 0;
        for (kind, map) in &state.objects {
            for s in state_in(map, ns) {
                remaining += 1;
                if !doc::is_deleting(&s.doc) {
                    out.push(Change::Delete {
                        kind,
                        namespace: ns.into(),
                        name: doc::name(&s.doc).into(),
                    });
                }
            }
        }
        if remaining == 0 {
            out.push(Change::Remove {
                kind: "Namespace",
                namespace: String::new(),
                name: ns.into(),
            });
        }
    }
}

fn state_in<'a>(
    map: &'a crate::engine::store::KindMap,
    ns: &'a str,
) -> impl Iterator<Item = &'a crate::engine::store::Stored> + 'a {
    map.range((ns.to_string(), String::new())..)
        .take_while(move |((n, _), _)| n == ns)
        .map(|(_, s)| s)
}
