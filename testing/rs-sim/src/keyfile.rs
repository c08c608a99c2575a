//! Would `mongod` read its keyfile in this pod? The bridge writes mounted files as whoever runs
//! it, so it cannot see the ownership and modes the kubelet gives them; this module works them
//! out from the pod spec instead, and refuses to start a member whose mongod would refuse.
//!
//! mongod's rules (server source `src/mongo/db/auth/security_file.cpp`, and "Keyfiles" in the
//! manual's internal-authentication page): the file must be readable by the mongod user, and on
//! POSIX systems must not be readable by group or others ("permissions on <file> are too open").
//!
//! The kubelet's rules (Kubernetes docs, "Secrets" → "Using Secrets as files from a Pod", and
//! "Configure a Security Context" → `fsGroup`): files of a Secret or ConfigMap volume are owned
//! by root with the item's `mode`, else the volume's `defaultMode`, else 0644; with a pod
//! `fsGroup` they belong to that group and get the group-read bit. An `emptyDir` is empty until an
//! init container writes it: the file then belongs to that container's user, with the mode its
//! `chmod` gives.

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

/// The user the official image runs mongod as when the pod does not say (`mongodb`, uid 999).
const IMAGE_MONGOD_UID: i64 = 999;

/// How the file looks to mongod: owner uid, the group it is readable through, mode bits.
#[derive(Debug, PartialEq, Eq)]
struct FileView {
    owner: i64,
    group: Option<i64>,
    mode: u32,
}

/// `Ok` when mongod in `pod`'s `container` would accept the keyfile at `path`; otherwise the
/// error mongod would log.
pub fn check(pod: &Pod, container: &str, path: &str) -> Result<(), String> {
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| "the pod has no spec".to_owned())?;
    let c = spec
        .containers
        .iter()
        .find(|c| c.name == container)
        .ok_or_else(|| format!("the pod has no container {container}"))?;
    let uid = run_as_user(spec, c).unwrap_or(IMAGE_MONGOD_UID);
    let file = file_view(spec, c, path)?;
    let readable = uid == 0
        || (file.owner == uid && file.mode & 0o400 != 0)
        || (file.group.is_some() && file.mode & 0o040 != 0)
        || file.mode & 0o004 != 0;
    if !readable {
        return Err(format!("error reading file {path}: Permission denied"));
    }
    if file.mode & 0o077 != 0 {
        return Err(format!("permissions on {path} are too open"));
    }
    Ok(())
}

fn run_as_user(spec: &PodSpec, c: &Container) -> Option<i64> {
    c.security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .or_else(|| spec.security_context.as_ref().and_then(|s| s.run_as_user))
}

/// The container's command, then its arguments.
pub(crate) fn command_line(c: &Container) -> Vec<&str> {
    c.command
        .iter()
        .chain(c.args.iter())
        .flatten()
        .map(String::as_str)
        .collect()
}

/// The mount of `c` that holds `path` (the longest mount path that is a parent): its volume's
/// name and the path inside it.
pub(crate) fn mount_for<'a>(c: &'a Container, path: &'a str) -> Option<(&'a str, &'a str)> {
    c.volume_mounts
        .iter()
        .flatten()
        .filter_map(|m| {
            let rest = path.strip_prefix(m.mount_path.trim_end_matches('/'))?;
            let rest = rest.strip_prefix('/')?;
            Some((m.name.as_str(), rest, m.mount_path.len()))
        })
        .max_by_key(|(_, _, len)| *len)
        .map(|(name, rest, _)| (name, rest))
}

fn file_view(spec: &PodSpec, c: &Container, path: &str) -> Result<FileView, String> {
    let missing = || format!("error reading file {path}: No such file or directory");
    let (volume, rel) = mount_for(c, path).ok_or_else(missing)?;
    let v = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == volume)
        .ok_or_else(missing)?;
    let fs_group = spec.security_context.as_ref().and_then(|s| s.fs_group);
    let from_keys = |items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>,
                     default_mode: Option<i32>| {
        let item_mode = match items {
            Some(items) => {
                items
                    .iter()
                    .find(|i| i.path == rel)
                    .ok_or_else(missing)?
                    .mode
            }
            None => None,
        };
        let mut mode = item_mode.or(default_mode).unwrap_or(0o644).unsigned_abs() & 0o777;
        if fs_group.is_some() {
            mode |= 0o040;
        }
        Ok(FileView {
            owner: 0,
            group: fs_group,
            mode,
        })
    };
    if let Some(s) = &v.secret {
        return from_keys(s.items.as_ref(), s.default_mode);
    }
    if let Some(m) = &v.config_map {
        return from_keys(m.items.as_ref(), m.default_mode);
    }
    if v.empty_dir.is_some() {
        return written_by_init(spec, volume, rel).ok_or_else(missing);
    }
    Err(format!(
        "{path}: volume {volume} is neither a Secret, a ConfigMap nor an emptyDir an init \
         container fills; the simulator cannot tell whether mongod could read it"
    ))
}

/// The file an init container writes into `volume` at `rel` with `chmod <octal> <file>`.
fn written_by_init(spec: &PodSpec, volume: &str, rel: &str) -> Option<FileView> {
    spec.init_containers.iter().flatten().rev().find_map(|c| {
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == volume && m.read_only != Some(true))?;
        let target = format!("{}/{rel}", mount.mount_path.trim_end_matches('/'));
        let words: Vec<&str> = command_line(c)
            .iter()
            .flat_map(|s| s.split(|ch: char| ch.is_whitespace() || ch == ';'))
            .filter(|w| !w.is_empty() && *w != "&&")
            .collect();
        let mode = words.windows(3).find_map(|w| match w {
            ["chmod", mode, file] if *file == target => u32::from_str_radix(mode, 8).ok(),
            _ => None,
        })?;
        Some(FileView {
            owner: run_as_user(spec, c).unwrap_or(0),
            group: None,
            mode: mode & 0o777,
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const PATH: &str = "/etc/mongod-keyfile/keyfile";

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "m-0"}, "spec": v})).unwrap()
    }

    fn mounted_secret(default_mode: i32, fs_group: Option<i64>) -> Pod {
        pod(json!({
            "securityContext": {"runAsUser": 999, "fsGroup": fs_group},
            "containers": [{"name": "mongod", "volumeMounts": [
                {"name": "keyfile", "mountPath": "/etc/mongod-keyfile", "readOnly": true}]}],
            "volumes": [{"name": "keyfile", "secret": {"secretName": "k", "defaultMode": default_mode}}],
        }))
    }

    /// The two cases: a 0400 Secret volume with an fsGroup becomes 0440 (too open);
    /// without one it is root's 0400 and uid 999 cannot read it.
    #[test]
    fn a_secret_volume_is_refused_with_and_without_fs_group() {
        assert_eq!(
            check(&mounted_secret(0o400, Some(999)), "mongod", PATH),
            Err(format!("permissions on {PATH} are too open"))
        );
        assert_eq!(
            check(&mounted_secret(0o400, None), "mongod", PATH),
            Err(format!("error reading file {PATH}: Permission denied"))
        );
        // Readable by others is readable, and too open.
        assert_eq!(
            check(&mounted_secret(0o644, None), "mongod", PATH),
            Err(format!("permissions on {PATH} are too open"))
        );
    }

    fn copied(init_user: Option<i64>, chmod: &str, mongod_user: Option<i64>) -> Pod {
        pod(json!({
            "securityContext": {"runAsUser": mongod_user, "fsGroup": 999},
            "initContainers": [{
                "name": "keyfile",
                "command": ["sh", "-c", format!(
                    "cp /etc/mongod-keyfile-secret/keyfile {PATH} && chmod {chmod} {PATH}")],
                "securityContext": {"runAsUser": init_user},
                "volumeMounts": [
                    {"name": "keyfile-secret", "mountPath": "/etc/mongod-keyfile-secret", "readOnly": true},
                    {"name": "keyfile", "mountPath": "/etc/mongod-keyfile"}],
            }],
            "containers": [{"name": "mongod", "volumeMounts": [
                {"name": "keyfile", "mountPath": "/etc/mongod-keyfile", "readOnly": true}]}],
            "volumes": [
                {"name": "keyfile-secret", "secret": {"secretName": "k", "defaultMode": 0o400}},
                {"name": "keyfile", "emptyDir": {}}],
        }))
    }

    /// The operators' way: an init container running as the mongod user copies the file into an
    /// emptyDir and makes it 0400. Copied by root, or left 0440, mongod refuses it.
    #[test]
    fn an_init_container_copy_is_accepted_only_as_the_mongod_user_with_mode_0400() {
        assert_eq!(
            check(&copied(Some(999), "0400", Some(999)), "mongod", PATH),
            Ok(())
        );
        // The pod's user is the image's default when the pod does not say.
        assert_eq!(
            check(&copied(Some(999), "400", None), "mongod", PATH),
            Ok(())
        );
        // Copied as root (no user for the pod or the init container): root's file.
        assert_eq!(
            check(&copied(None, "0400", None), "mongod", PATH),
            Err(format!("error reading file {PATH}: Permission denied"))
        );
        assert_eq!(
            check(&copied(Some(999), "0440", Some(999)), "mongod", PATH),
            Err(format!("permissions on {PATH} are too open"))
        );
        // An emptyDir nobody writes holds no keyfile.
        let mut p = copied(Some(999), "0400", Some(999));
        p.spec.as_mut().unwrap().init_containers = None;
        assert_eq!(
            check(&p, "mongod", PATH),
            Err(format!(
                "error reading file {PATH}: No such file or directory"
            ))
        );
    }
}
