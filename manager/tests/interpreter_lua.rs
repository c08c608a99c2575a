//! The Lua of `deploy/karmada/resourceinterpreter-mongodb.yaml`, run on sample objects the way
//! Karmada calls it (objects as tables, JSON null as nil).

#![allow(clippy::unwrap_used)]

use mlua::serde::SerializeOptions;
use mlua::{Function, Lua, LuaSerdeExt, Value as LuaValue};
use serde_json::{Value, json};

const INTERPRETER: &str = include_str!("../../deploy/karmada/resourceinterpreter-mongodb.yaml");
const MEMBER_WITH_STATUS: &str =
    include_str!("../../deploy/samples/seed/mongodb-member-with-status.yaml");
const SINGLE_CLUSTER: &str = include_str!("../../deploy/samples/seed/mongodb-single-cluster.yaml");

#[allow(
    clippy::panic,
    reason = "test helper (not a #[test] itself): a panic fails the calling test"
)]
fn script(kind: &str) -> String {
    let doc: Value = serde_yaml::from_str(INTERPRETER).unwrap();
    doc["spec"]["customizations"][kind]["luaScript"]
        .as_str()
        .unwrap_or_else(|| panic!("no {kind} script"))
        .to_owned()
}

fn lua_with(kind: &str) -> Lua {
    let lua = Lua::new();
    lua.load(script(kind)).exec().unwrap();
    lua
}

fn to_lua(lua: &Lua, v: &Value) -> LuaValue {
    let opts = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    lua.to_value_with(v, opts).unwrap()
}

fn from_lua(lua: &Lua, v: LuaValue) -> Value {
    lua.from_value(v).unwrap()
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).unwrap()
}

/// The member object the manager produces for the seed sample (exporter on, nodeSelect).
fn seed_member() -> Value {
    json!({
        "apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MongoDB",
        "metadata": {"name": "multicloudmongodb-sample", "namespace": "demo"},
        "spec": {
            "members": 2,
            "image": "mongo:7.0",
            "resources": {"limits": {"cpu": "2", "memory": "512Mi"}, "requests": {"cpu": "1", "memory": "512Mi"}},
            "metricsExporterSpec": {"enable": true, "resources": {
                "limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "200m", "memory": "256Mi"}}},
            "podSpec": {"nodeSelector": {"deploy": "mongo"},
                        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]},
        }
    })
}

#[test]
fn replicas_come_with_the_member_requirements_exporter_included() {
    let lua = lua_with("replicaResource");
    let f: Function = lua.globals().get("GetReplicas").unwrap();
    let (replicas, req): (i64, LuaValue) = f.call(to_lua(&lua, &seed_member())).unwrap();
    assert_eq!(replicas, 2);
    let req = from_lua(&lua, req);
    assert_eq!(req["namespace"], "demo");
    // mongod 1 CPU + exporter 200m; 512Mi + 256Mi.
    assert_eq!(req["resourceRequest"]["cpu"], "1200m");
    assert_eq!(req["resourceRequest"]["memory"], "805306368");
    assert_eq!(req["nodeClaim"]["nodeSelector"]["deploy"], "mongo");
    assert_eq!(req["nodeClaim"]["tolerations"][0]["key"], "dedicated");
}

#[test]
fn limits_without_requests_count_and_fractions_add_up() {
    let lua = lua_with("replicaResource");
    let f: Function = lua.globals().get("GetReplicas").unwrap();
    let single = yaml(SINGLE_CLUSTER); // limits == requests cpu "1", exporter "0.1" CPU
    let (replicas, req): (i64, LuaValue) = f.call(to_lua(&lua, &single)).unwrap();
    assert_eq!(replicas, 1);
    let req = from_lua(&lua, req);
    assert_eq!(req["resourceRequest"]["cpu"], "1100m");
    assert_eq!(req["resourceRequest"]["memory"], "671088640");
    let only_limits = json!({"metadata": {"name": "x"}, "spec": {"members": 3,
        "resources": {"limits": {"cpu": "1.5", "memory": "1Gi"}}}});
    let (_, req): (i64, LuaValue) = f.call(to_lua(&lua, &only_limits)).unwrap();
    let req = from_lua(&lua, req);
    assert_eq!(req["resourceRequest"]["cpu"], "1500m");
    assert_eq!(req["resourceRequest"]["memory"], "1073741824");
    // Nothing asked for: no requirements, and no error.
    let bare = json!({"metadata": {"name": "x"}, "spec": {"members": 0}});
    let (n, req): (i64, LuaValue) = f.call(to_lua(&lua, &bare)).unwrap();
    assert_eq!(n, 0);
    assert_eq!(from_lua(&lua, req).get("resourceRequest"), None);
}

#[test]
fn revising_replicas_sets_members() {
    let lua = lua_with("replicaRevision");
    let f: Function = lua.globals().get("ReviseReplica").unwrap();
    let out: LuaValue = f.call((to_lua(&lua, &seed_member()), 5)).unwrap();
    assert_eq!(from_lua(&lua, out)["spec"]["members"], 5);
}

#[test]
fn reflected_status_keeps_the_topology_and_nothing_else() {
    let lua = lua_with("statusReflection");
    let f: Function = lua.globals().get("ReflectStatus").unwrap();
    let mut obj = yaml(MEMBER_WITH_STATUS);
    obj["status"]["rootPassword"] = json!("leaked-secret");
    obj["status"]["replset"][0]["password"] = json!("leaked-secret");
    let out = from_lua(&lua, f.call(to_lua(&lua, &obj)).unwrap());
    assert_eq!(out["state"], "Running");
    assert_eq!(out["currentInfo"]["members"], 4);
    assert_eq!(out["replset"].as_array().unwrap().len(), 5);
    assert_eq!(out["replset"][1]["stateStr"], "PRIMARY");
    assert_eq!(out["replset"][1]["name"], "10.29.5.103:38640");
    assert_eq!(out["currentRevision"], "multicloudmongodb-sample-666cb9cb8");
    let text = out.to_string();
    assert!(!text.contains("leaked-secret"), "{text}");
    assert!(
        !text.contains("39nZzksAmXE="),
        "the spec's password stays in the member cluster"
    );
    // It reads back as our status type.
    let _: fedstate_api::v1alpha1::MongoDBStatus = serde_json::from_value(out).unwrap();
}

#[test]
fn objects_without_status_never_error() {
    let bare = json!({"metadata": {"name": "x"}, "spec": {"members": 1}});
    let lua = lua_with("statusReflection");
    let f: Function = lua.globals().get("ReflectStatus").unwrap();
    let out: LuaValue = f.call(to_lua(&lua, &bare)).unwrap();
    assert!(matches!(out, LuaValue::Table(_)));
    let lua = lua_with("healthInterpretation");
    let f: Function = lua.globals().get("InterpretHealth").unwrap();
    let healthy: bool = f.call(to_lua(&lua, &bare)).unwrap();
    assert!(!healthy);
}

#[test]
fn health_follows_the_replica_set_members() {
    let lua = lua_with("healthInterpretation");
    let f: Function = lua.globals().get("InterpretHealth").unwrap();
    let mut obj = yaml(MEMBER_WITH_STATUS);
    assert!(f.call::<bool>(to_lua(&lua, &obj)).unwrap());
    obj["status"]["replset"][3]["health"] = json!(0);
    assert!(!f.call::<bool>(to_lua(&lua, &obj)).unwrap());
    let mut reconciling = yaml(MEMBER_WITH_STATUS);
    reconciling["status"]["state"] = json!("Reconciling");
    assert!(!f.call::<bool>(to_lua(&lua, &reconciling)).unwrap());
}

#[test]
fn aggregation_sums_members_and_keeps_each_cluster() {
    let lua = lua_with("statusAggregation");
    let f: Function = lua.globals().get("AggregateStatus").unwrap();
    let member = yaml(MEMBER_WITH_STATUS);
    let items = json!([
        {"clusterName": "member1", "status": member["status"].clone(), "applied": true},
        {"clusterName": "member2", "status": {"state": "Reconciling", "currentInfo": {"members": 1},
            "replset": member["status"]["replset"].clone()}, "applied": true},
        {"clusterName": "member3", "applied": false},
    ]);
    let template =
        json!({"metadata": {"name": "multicloudmongodb-sample"}, "spec": {"members": 5}});
    let out = from_lua(
        &lua,
        f.call((to_lua(&lua, &template), to_lua(&lua, &items)))
            .unwrap(),
    );
    let s = &out["status"];
    assert_eq!(s["currentInfo"]["members"], 5);
    assert_eq!(s["state"], "Reconciling");
    assert_eq!(
        s["replset"].as_array().unwrap().len(),
        5,
        "each member once"
    );
    let conds = s["conditions"].as_array().unwrap();
    let types: Vec<_> = conds.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["Cluster-member1", "Cluster-member2", "Cluster-member3"]
    );
    assert_eq!(conds[0]["status"], "True");
    assert_eq!(conds[2]["reason"], "Unknown");
    let _: fedstate_api::v1alpha1::MongoDBStatus = serde_json::from_value(s.clone()).unwrap();
}
