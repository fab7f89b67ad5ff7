//! `images:`: rewrites image references (name, tag, digest) in containers and init containers
//! anywhere in an object, and in the configuration's `images` fields.
//!
//! The image `name` is matched as kustomize does: as a regular expression anchored at both
//! ends, optionally followed by a tag and a `sha256` digest.

use std::cell::RefCell;
use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

use super::fieldspec;
use super::{Error, Result, field_error};
use crate::model::{ResId, ResMap};
use crate::render::types::{FieldSpec, Image};

/// The image transformer for one `images:` entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageTagTransformer {
    /// Which image to change and how.
    pub image: Image,
    /// Extra fields holding image references (the configuration's `images` specs).
    pub field_specs: Vec<FieldSpec>,
}

impl ImageTagTransformer {
    /// Rewrites matching image references in every object except CRDs.
    pub fn apply(&self, resmap: &mut ResMap) -> Result<()> {
        // A name that is not a valid pattern matches nothing, as in kustomize.
        let Some(matcher) = image_matcher(&self.image.name) else {
            return Ok(());
        };
        for resource in resmap.iter_mut() {
            if resource.object.get("kind").and_then(Value::as_str)
                == Some("CustomResourceDefinition")
            {
                continue;
            }
            let gvk = resource.gvk();
            let mut object = Value::Object(std::mem::take(&mut resource.object));
            // Ids are built only for errors: images never touch the name.
            let mut result = self
                .update_containers(&mut object, &matcher)
                .map_err(|cause| Error::Config {
                    transformer: "ImageTagTransformer".into(),
                    cause: format!("{}: {cause}", ResId::of(&object)),
                });
            if result.is_ok() {
                for spec in &self.field_specs {
                    let mut set = |field: &mut Value| self.update(field, &matcher);
                    if let Err(cause) = fieldspec::apply(&mut object, &gvk, spec, None, &mut set) {
                        result = Err(field_error(ResId::of(&object), &spec.path)(cause));
                        break;
                    }
                }
            }
            if let Value::Object(map) = object {
                resource.object = map;
            }
            result?;
        }
        Ok(())
    }

    /// kustomize's legacy pass: every `containers` / `initContainers` list anywhere in the
    /// object, innermost first.
    fn update_containers(
        &self,
        node: &mut Value,
        matcher: &Regex,
    ) -> std::result::Result<(), String> {
        match node {
            Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    self.update_containers(value, matcher)?;
                    if (key == "containers" || key == "initContainers")
                        && let Value::Array(items) = value
                    {
                        for item in items.iter_mut() {
                            if let Some(image) = item.get_mut("image") {
                                self.update(image, matcher)?;
                            }
                        }
                    }
                }
                Ok(())
            }
            Value::Array(items) => items
                .iter_mut()
                .try_for_each(|item| self.update_containers(item, matcher)),
            _ => Ok(()),
        }
    }

    fn update(&self, field: &mut Value, matcher: &Regex) -> std::result::Result<(), String> {
        let value = match field {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => return Ok(()),
            _ => return Err("wrong node kind: expected ScalarNode for an image".to_string()),
        };
        if !matcher.is_match(&value) {
            return Ok(());
        }
        *field = Value::String(self.rewrite(&value));
        Ok(())
    }

    fn rewrite(&self, reference: &str) -> String {
        let (name, tag, digest) = split_image(reference);
        let image = &self.image;
        let mut name = if image.new_name.is_empty() {
            name.to_string()
        } else {
            image.new_name.clone()
        };
        let (tag, digest) = match (image.new_tag.as_str(), image.digest.as_str()) {
            (t, d) if !t.is_empty() && !d.is_empty() => (t.to_string(), d.to_string()),
            (t, _) if !t.is_empty() => (t.to_string(), String::new()),
            (_, d) if !d.is_empty() => (String::new(), d.to_string()),
            _ if !image.tag_suffix.is_empty() => {
                (format!("{tag}{}", image.tag_suffix), String::new())
            }
            _ => (tag.to_string(), digest.to_string()),
        };
        if !tag.is_empty() {
            name.push(':');
            name.push_str(&tag);
        }
        if !digest.is_empty() {
            name.push('@');
            name.push_str(&digest);
        }
        name
    }
}

/// Splits `[host[:port]/]path[:tag][@digest]` into name, tag and digest; a colon before the
/// first slash belongs to the host.
pub fn split_image(reference: &str) -> (&str, &str, &str) {
    let offset = match reference.find('/') {
        Some(i) if i > 0 => i,
        _ => 0,
    };
    let search = &reference[offset..];
    let at = search.find('@').map(|i| i + offset);
    let colon = search.find(':').map(|i| i + offset);
    match (colon, at) {
        (None, None) => (reference, "", ""),
        // A digest before any tag colon: the colon belongs to the digest (`sha256:`).
        (None, Some(d)) => (&reference[..d], "", &reference[d + 1..]),
        (Some(c), Some(d)) if d < c => (&reference[..d], "", &reference[d + 1..]),
        (Some(c), Some(d)) => (&reference[..c], &reference[c + 1..d], &reference[d + 1..]),
        (Some(c), None) => (&reference[..c], &reference[c + 1..], ""),
    }
}

/// The anchored pattern an `images:` name stands for (`None` when it is not a valid regular
/// expression). Compiled once per name and thread: every kustomization of a build with
/// `images:` asks again, and compiling costs more than matching.
fn image_matcher(name: &str) -> Option<Regex> {
    /// More distinct names than this in one thread and the cache starts over.
    const CACHE_LIMIT: usize = 4096;
    thread_local! {
        static MATCHERS: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new());
    }
    MATCHERS.with_borrow_mut(|matchers| {
        if let Some(matcher) = matchers.get(name) {
            return matcher.clone();
        }
        if matchers.len() >= CACHE_LIMIT {
            matchers.clear();
        }
        let matcher = Regex::new(&format!(
            "^{name}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$"
        ))
        .ok();
        matchers.insert(name.to_string(), matcher.clone());
        matcher
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resource;
    use crate::render::transformers::TransformerConfig;
    use serde_json::json;

    #[test]
    fn splits_references_with_ports_and_digests() {
        assert_eq!(split_image("nginx"), ("nginx", "", ""));
        assert_eq!(split_image("nginx:1.2"), ("nginx", "1.2", ""));
        assert_eq!(
            split_image("reg:5000/app/nginx:1.2"),
            ("reg:5000/app/nginx", "1.2", "")
        );
        assert_eq!(
            split_image("reg:5000/nginx@sha256:abc"),
            ("reg:5000/nginx", "", "sha256:abc")
        );
        assert_eq!(
            split_image("nginx:1.2@sha256:abc"),
            ("nginx", "1.2", "sha256:abc")
        );
    }

    fn pod(image: &str) -> ResMap {
        let Value::Object(map) = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": image}], "initContainers": [{"name": "b", "image": "other:1"}]}})
        else {
            unreachable!()
        };
        [Resource::new(map)].into_iter().collect()
    }

    fn run(image: Image, reference: &str) -> String {
        let mut map = pod(reference);
        ImageTagTransformer {
            image,
            field_specs: TransformerConfig::builtin().images,
        }
        .apply(&mut map)
        .unwrap();
        map.as_slice()[0].to_value()["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn tags_names_and_digests_are_rewritten() {
        let image = |new_name: &str, new_tag: &str, digest: &str, tag_suffix: &str| Image {
            name: "nginx".into(),
            new_name: new_name.into(),
            new_tag: new_tag.into(),
            digest: digest.into(),
            tag_suffix: tag_suffix.into(),
        };
        assert_eq!(run(image("", "2", "", ""), "nginx:1"), "nginx:2");
        assert_eq!(run(image("my/nginx", "", "", ""), "nginx:1"), "my/nginx:1");
        assert_eq!(
            run(image("", "", "sha256:ff", ""), "nginx:1"),
            "nginx@sha256:ff"
        );
        // kustomize runs its legacy container pass and the field-spec pass, so a tag suffix
        // lands twice on container images (`kubectl kustomize` prints `nginx:1-debug-debug`).
        assert_eq!(
            run(image("", "", "", "-debug"), "nginx:1"),
            "nginx:1-debug-debug"
        );
        assert_eq!(
            run(image("", "2", "", ""), "nginx-other:1"),
            "nginx-other:1"
        );
        assert_eq!(
            run(image("", "3", "sha256:ee", ""), "nginx"),
            "nginx:3@sha256:ee"
        );
    }
}
