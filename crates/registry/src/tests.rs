//! The registry's rules on their own: no worker, no engine.

use super::*;

/// Targets that reach nothing: the registry never looks into them.
enum Bare {}

impl Wiring for Bare {
    type Conn = ();
    type Queue = ();
    fn listener_queue(_len: usize) {}
}

type Reg = Registry<Bare>;

fn target(script: &str, handler: u32) -> Target<Bare> {
    Target {
        script_id: Arc::from(script),
        conn: Arc::new(()),
        handler,
    }
}

fn route(reg: &Reg, script: &str, handler: u32, method: &str, path: &str) -> Prepared<Bare> {
    route_open(reg, script, handler, method, path, false)
}

fn route_open(
    reg: &Reg,
    script: &str,
    handler: u32,
    method: &str,
    path: &str,
    public: bool,
) -> Prepared<Bare> {
    let r = Registration::Route {
        handler,
        method: method.into(),
        path: path.into(),
        description: String::new(),
        public,
    };
    reg.prepare(r, target(script, handler))
        .expect("valid route")
}

fn function(reg: &Reg, script: &str, handler: u32, name: &str) -> Prepared<Bare> {
    let f = Registration::Function {
        handler,
        name: name.into(),
        description: String::new(),
        parameters: "[]".into(),
        return_schema: "null".into(),
        tags: Vec::new(),
        is_async: false,
    };
    reg.prepare(f, target(script, handler))
        .expect("valid function")
}

fn listener(reg: &Reg, script: &str, handler: u32, event: &str, priority: i64) -> Prepared<Bare> {
    let l = Registration::Listener {
        handler,
        event: event.into(),
        priority,
    };
    reg.prepare(l, target(script, handler))
        .expect("valid listener")
}

fn timer(reg: &Reg, script: &str, handler: u32) -> Prepared<Bare> {
    let t = Registration::Timer {
        handler,
        name: format!("t{handler}"),
        schedule: TimerSchedule::Interval {
            interval_ms: 1000,
            delay_ms: 0,
            repeat: true,
        },
    };
    reg.prepare(t, target(script, handler))
        .expect("valid timer")
}

fn segs(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The owner, handler and path parameters of a matched route.
type Answerer = (String, u32, Vec<(String, String)>);

/// Who answers `method path`, and with which parameters.
fn who(reg: &Reg, method: &str, path: &str) -> Option<Answerer> {
    reg.match_route(method, &segs(path))
        .map(|(r, p)| (r.target.script_id.to_string(), r.target.handler, p))
}

#[test]
fn only_routes_registered_public_are_public_and_only_while_registered() {
    let reg = Reg::new(8);
    assert!(!reg.is_public("GET", &segs("/hook")));
    reg.commit(vec![
        route_open(&reg, "a", 1, "POST", "/hook/{id}", true),
        route(&reg, "a", 2, "GET", "/hook/{id}"),
        route(&reg, "b", 1, "GET", "/closed"),
    ])
    .expect("commit");
    assert!(reg.is_public("POST", &segs("/hook/7")));
    assert!(!reg.is_public("GET", &segs("/hook/7")), "per method");
    assert!(!reg.is_public("GET", &segs("/closed")));
    assert!(!reg.is_public("POST", &segs("/nothing")));
    assert_eq!(reg.remove_script("a").apis, 2);
    assert!(
        !reg.is_public("POST", &segs("/hook/7")),
        "gone with its script"
    );
}

#[test]
fn route_shapes() {
    let a = parse_route("/items/{id}").expect("ok");
    let b = parse_route("/items/{name}/").expect("ok");
    assert!(same_shape(&a, &b));
    assert!(!same_shape(&a, &parse_route("/items/x").expect("ok")));
    assert!(parse_route("items").is_err());
    assert!(parse_route("/a//b").is_err());
    assert!(parse_route("/a/{}").is_err());
    assert!(parse_route("/a/x{y}").is_err());
    assert!(parse_route("/a/{1x}").is_err());
    assert!(parse_route("/a?b").is_err());
    assert_eq!(canonical(&parse_route("/").expect("ok")), "/");
    assert_eq!(canonical(&parse_route("/a/b/").expect("ok")), "/a/b");
}

#[test]
fn commit_is_all_or_none_when_another_script_took_a_route_meanwhile() {
    let reg = Reg::new(8);
    // B staged both while A was not there yet; A commits first.
    let b_items = vec![
        route(&reg, "b", 1, "GET", "/free"),
        function(&reg, "b", 2, "b_fn"),
        listener(&reg, "b", 3, "tick", 0),
        timer(&reg, "b", 4),
        route(&reg, "b", 5, "GET", "/shared"),
    ];
    reg.commit(vec![route(&reg, "a", 1, "GET", "/shared")])
        .expect("a commits");
    let err = reg.commit(b_items).expect_err("b clashes with a");
    assert_eq!(err.owner(), Some("a"));
    assert!(matches!(err, RegError::RouteTaken { .. }), "{err}");
    assert_eq!(reg.counts("b"), Counts::default(), "nothing of b is live");
    assert!(who(&reg, "GET", "/free").is_none());
    assert!(reg.function("b_fn").is_none());
    assert!(reg.listeners("tick").is_empty());
    assert!(reg.timers().is_empty());
    assert_eq!(
        who(&reg, "GET", "/shared").map(|w| w.0).as_deref(),
        Some("a")
    );
}

#[test]
fn commit_arms_timers_and_orders_listeners_by_priority_then_registration() {
    let reg = Reg::new(8);
    let t = timer(&reg, "a", 9);
    let Prepared::Timer(entry) = &t else {
        panic!("a timer")
    };
    let entry = entry.clone();
    assert!(!*entry.armed.borrow(), "staged timers are not armed");
    reg.commit(vec![
        listener(&reg, "a", 1, "ev", 5),
        listener(&reg, "b", 2, "ev", 1),
        listener(&reg, "c", 3, "ev", 5),
        t,
    ])
    .expect("commit");
    assert!(*entry.armed.borrow(), "committed timers are armed");
    let order: Vec<_> = reg
        .listeners("ev")
        .iter()
        .map(|l| l.target.script_id.to_string())
        .collect();
    assert_eq!(order, ["b", "a", "c"]);
}

#[test]
fn two_scripts_cannot_register_the_same_route_or_function() {
    let reg = Reg::new(8);
    reg.commit(vec![
        route(&reg, "a", 1, "GET", "/items/{id}"),
        function(&reg, "a", 2, "calc"),
    ])
    .expect("a commits");

    // Same shape, other parameter name, method in another case: the same route.
    let same_route = route(&reg, "b", 1, "get", "/items/{name}");
    let err = reg.conflict(&same_route, &[]).expect_err("clash");
    assert_eq!(err.owner(), Some("a"));
    assert!(err.to_string().contains("GET /items/{name}"), "{err}");

    let err = reg
        .conflict(&function(&reg, "b", 2, "calc"), &[])
        .expect_err("clash");
    assert!(matches!(err, RegError::FunctionTaken { ref owner, .. } if owner == "a"));

    // Other method, literal instead of parameter, other name: no clash.
    for p in [
        route(&reg, "b", 3, "POST", "/items/{id}"),
        route(&reg, "b", 4, "GET", "/items/special"),
        route(&reg, "b", 5, "GET", "/items/{id}/parts"),
        function(&reg, "b", 6, "calc2"),
        listener(&reg, "b", 7, "ev", 0),
        timer(&reg, "b", 8),
    ] {
        reg.conflict(&p, &[]).expect("no clash");
    }
}

#[test]
fn a_script_cannot_stage_the_same_route_or_function_twice() {
    let reg = Reg::new(8);
    let staged = vec![
        route(&reg, "a", 1, "PUT", "/x/{a}"),
        function(&reg, "a", 2, "f"),
    ];
    let err = reg
        .conflict(&route(&reg, "a", 3, "PUT", "/x/{b}"), &staged)
        .expect_err("staged clash");
    assert_eq!(err.owner(), Some("a"));
    let err = reg
        .conflict(&function(&reg, "a", 4, "f"), &staged)
        .expect_err("staged clash");
    assert_eq!(err.owner(), Some("a"));
    // Staged entries are not live: another script does not see them.
    reg.conflict(&route(&reg, "b", 1, "PUT", "/x/{c}"), &[])
        .expect("staged is invisible to others");
    assert!(who(&reg, "PUT", "/x/1").is_none());
}

#[test]
fn literal_routes_win_then_the_pattern_with_more_literals() {
    let reg = Reg::new(8);
    reg.commit(vec![
        route(&reg, "a", 1, "GET", "/items/{id}"),
        route(&reg, "a", 2, "GET", "/items/special"),
        route(&reg, "a", 3, "GET", "/a/{x}/{y}"),
        route(&reg, "a", 4, "GET", "/a/{x}/c"),
        route(&reg, "a", 5, "POST", "/items/{id}"),
        route(&reg, "a", 6, "GET", "/"),
    ])
    .expect("commit");
    assert_eq!(who(&reg, "GET", "/items/special").map(|w| w.1), Some(2));
    let (_, h, params) = who(&reg, "GET", "/items/42").expect("pattern");
    assert_eq!((h, params), (1, vec![("id".into(), "42".into())]));
    assert_eq!(who(&reg, "GET", "/a/1/c").map(|w| w.1), Some(4));
    assert_eq!(who(&reg, "GET", "/a/1/d").map(|w| w.1), Some(3));
    assert_eq!(who(&reg, "POST", "/items/special").map(|w| w.1), Some(5));
    assert_eq!(who(&reg, "GET", "/").map(|w| w.1), Some(6));
    assert!(who(&reg, "DELETE", "/items/1").is_none());
    assert!(who(&reg, "GET", "/items").is_none());
    assert!(who(&reg, "GET", "/items/1/2").is_none());
    assert!(reg.path_known(&segs("/items/1")));
    assert!(!reg.path_known(&segs("/nothing")));
}

#[test]
fn a_segment_holding_a_slash_only_fills_a_parameter() {
    let reg = Reg::new(8);
    reg.commit(vec![
        route(&reg, "a", 1, "GET", "/f/a/b"),
        route(&reg, "a", 2, "GET", "/f/{name}"),
    ])
    .expect("commit");
    // `/f/a%2Fb` decodes to the segments ["f", "a/b"].
    let m = reg.match_route("GET", &["f".into(), "a/b".into()]);
    let (r, params) = m.expect("pattern");
    assert_eq!(r.target.handler, 2);
    assert_eq!(params, vec![("name".into(), "a/b".into())]);
}

#[test]
fn withdraw_removes_one_registration_of_its_own_script() {
    let reg = Reg::new(8);
    reg.commit(vec![
        route(&reg, "a", 1, "GET", "/one"),
        route(&reg, "a", 2, "GET", "/two/{x}"),
        function(&reg, "a", 3, "f"),
        listener(&reg, "a", 4, "ev", 0),
        timer(&reg, "a", 5),
    ])
    .expect("a");
    reg.commit(vec![route(&reg, "b", 1, "GET", "/b")])
        .expect("b");
    // Another script's handler 1, or the wrong kind, is not a's route 1.
    assert!(!reg.withdraw("b", RegKind::Route, 2));
    assert!(!reg.withdraw("a", RegKind::Function, 1));
    assert!(reg.withdraw("a", RegKind::Route, 1));
    assert!(!reg.withdraw("a", RegKind::Route, 1), "already gone");
    assert!(who(&reg, "GET", "/one").is_none());
    assert!(who(&reg, "GET", "/two/x").is_some());
    assert!(who(&reg, "GET", "/b").is_some());
    assert!(reg.withdraw("a", RegKind::Route, 2));
    assert!(reg.withdraw("a", RegKind::Function, 3));
    assert!(reg.function("f").is_none());
    assert!(reg.withdraw("a", RegKind::Listener, 4));
    assert!(
        reg.all_listeners().is_empty(),
        "no empty event is left behind"
    );
    assert!(reg.withdraw("a", RegKind::Timer, 5));
    assert_eq!(reg.counts("a"), Counts::default());
    // The name is free again.
    reg.commit(vec![function(&reg, "b", 2, "f")])
        .expect("f is free");
}

#[test]
fn remove_script_takes_everything_of_one_script_and_says_what() {
    let reg = Reg::new(8);
    reg.commit(vec![
        route(&reg, "a", 1, "GET", "/x"),
        route(&reg, "a", 2, "GET", "/y/{id}"),
        function(&reg, "a", 3, "f"),
        listener(&reg, "a", 4, "ev", 0),
        listener(&reg, "a", 5, "other", 0),
        timer(&reg, "a", 6),
    ])
    .expect("a");
    reg.commit(vec![
        route(&reg, "b", 1, "GET", "/z"),
        listener(&reg, "b", 2, "ev", 0),
        timer(&reg, "b", 3),
    ])
    .expect("b");
    let want = Counts {
        apis: 2,
        functions: 1,
        events: 2,
        timers: 1,
    };
    assert_eq!(reg.counts("a"), want);
    assert_eq!(reg.remove_script("a"), want);
    assert_eq!(reg.counts("a"), Counts::default());
    assert_eq!(reg.remove_script("a"), Counts::default());
    let b = Counts {
        apis: 1,
        functions: 0,
        events: 1,
        timers: 1,
    };
    assert_eq!(reg.counts("b"), b);
    assert_eq!(
        reg.all_listeners()
            .iter()
            .map(|(e, _)| e.as_str())
            .collect::<Vec<_>>(),
        ["ev"]
    );
}

#[test]
fn bad_registrations_are_refused_before_staging() {
    let reg = Reg::new(8);
    let bad_route = Registration::Route {
        handler: 1,
        method: "GET".into(),
        path: "no-slash".into(),
        description: String::new(),
        public: false,
    };
    assert!(reg.prepare(bad_route, target("a", 1)).is_err());
    let no_event = Registration::Listener {
        handler: 1,
        event: String::new(),
        priority: 0,
    };
    assert!(reg.prepare(no_event, target("a", 1)).is_err());
    let bad_cron = Registration::Timer {
        handler: 1,
        name: "t".into(),
        schedule: TimerSchedule::Cron {
            expr: "not cron".into(),
        },
    };
    assert!(reg.prepare(bad_cron, target("a", 1)).is_err());
    let long = Registration::Function {
        handler: 1,
        name: "f".repeat(MAX_NAME + 1),
        description: String::new(),
        parameters: String::new(),
        return_schema: String::new(),
        tags: Vec::new(),
        is_async: false,
    };
    assert!(reg.prepare(long, target("a", 1)).is_err());
}
