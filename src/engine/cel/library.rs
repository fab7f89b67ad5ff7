//! The CEL environment of CRD validation rules: cel-rust's standard library and its strings
//! extension, plus the Kubernetes libraries a kube-apiserver 1.31 offers rules and that the
//! engine implements here — lists (`isSorted`, `sum`, `min`, `max`, `indexOf`,
//! `lastIndexOf`), regex (`find`, `findAll`), URLs (`url`, `isURL`, `getScheme`, `getHost`,
//! `getHostname`, `getPort`, `getEscapedPath`, `getQuery`), quantities (`quantity`,
//! `isQuantity`, `sign`, `isGreaterThan`, `isLessThan`, `compareTo`, `add`, `sub`,
//! `asInteger`, `isInteger`, `asApproximateFloat`) and sets (`sets.contains`,
//! `sets.equivalent`, `sets.intersects`).
//!
//! Not here (a rule calling one is reported as not evaluated): `duration`, `timestamp` and
//! their accessors, the IP and CIDR libraries, `format`'s named formats.
//! [`KUBERNETES_FUNCTIONS`] lists every function name kube-apiserver knows, to tell a rule
//! that calls something unknown to Kubernetes (an invalid CRD) from one calling something the
//! engine lacks.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use ::cel::common::types::{DYN_TYPE, INT_TYPE, LIST_TYPE, STRING_TYPE, Type};
use ::cel::common::value::CowVal;
use ::cel::objects::{Key, Map, Opaque, Value};
use ::cel::{Env, ExecutionError, extensions};

/// Every function name of kube-apiserver's CEL environment for CRD rules (standard library,
/// macros, optional values, strings and sets extensions, Kubernetes libraries), operators
/// aside.
pub const KUBERNETES_FUNCTIONS: &[&str] = &[
    // standard library and macros
    "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double", "string",
    "bytes", "bool", "dyn", "type", "duration", "timestamp", "getFullYear", "getMonth",
    "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getHours", "getMinutes",
    "getSeconds", "getMilliseconds", "has", "all", "exists", "exists_one", "map", "filter",
    // optional values
    "of", "ofNonZeroValue", "none", "hasValue", "value", "or", "orValue", "optMap",
    "optFlatMap",
    // strings extension
    "charAt", "indexOf", "lastIndexOf", "lowerAscii", "upperAscii", "replace", "split",
    "substring", "trim", "join", "quote", "format",
    // lists, regex
    "isSorted", "sum", "min", "max", "find", "findAll",
    // URLs
    "url", "isURL", "getScheme", "getHost", "getHostname", "getPort", "getEscapedPath",
    "getQuery",
    // quantities
    "quantity", "isQuantity", "sign", "isGreaterThan", "isLessThan", "compareTo", "add",
    "sub", "asInteger", "isInteger", "asApproximateFloat",
    // IP and CIDR
    "ip", "isIP", "isCanonical", "family", "isUnspecified", "isLoopback",
    "isLinkLocalMulticast", "isLinkLocalUnicast", "isGlobalUnicast", "cidr", "isCIDR",
    "containsIP", "containsCIDR", "prefixLength", "masked",
];

/// The shared environment: built once, used by every compiled rule.
pub static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(environment()));

fn url_type() -> Type {
    Type::new_opaque_type("kubernetes.URL")
}

fn quantity_type() -> Type {
    Type::new_opaque_type("kubernetes.Quantity")
}

fn environment() -> Env {
    let mut env = Env::stdlib();
    let registered = register(&mut env);
    // The declarations are fixed: a failure is a bug caught by every unit test.
    debug_assert!(registered.is_ok(), "{registered:?}");
    env
}

fn register(env: &mut Env) -> Result<(), ::cel::DeclarationError> {
    env.add_extension(extensions::strings)?;
    env.add_member_overload("isSorted", "list_is_sorted", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list_sum", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list_min", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list_max", LIST_TYPE, vec![], max)?;
    env.add_member_overload(
        "indexOf",
        "list_index_of",
        LIST_TYPE,
        vec![DYN_TYPE],
        index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list_last_index_of",
        LIST_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )?;
    let two_lists = || vec![LIST_TYPE, LIST_TYPE];
    env.add_overload("sets.contains", "sets_contains", two_lists(), sets_contains)?;
    env.add_overload(
        "sets.equivalent",
        "sets_equivalent",
        two_lists(),
        sets_equivalent,
    )?;
    env.add_overload("sets.intersects", "sets_intersects", two_lists(), sets_intersects)?;
    env.add_member_overload("find", "string_find", STRING_TYPE, vec![STRING_TYPE], find)?;
    env.add_member_overload(
        "findAll",
        "string_find_all",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_n",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all,
    )?;
    env.add_overload("url", "string_to_url", vec![STRING_TYPE], url)?;
    env.add_overload("isURL", "is_url_string", vec![STRING_TYPE], is_url)?;
    for (name, accessor) in [
        ("getScheme", url_scheme as ::cel::common::functions::Function),
        ("getHost", url_host),
        ("getHostname", url_hostname),
        ("getPort", url_port),
        ("getEscapedPath", url_path),
        ("getQuery", url_query),
    ] {
        env.add_member_overload(name, name, url_type(), vec![], accessor)?;
    }
    env.add_overload("quantity", "string_to_quantity", vec![STRING_TYPE], quantity)?;
    env.add_overload("isQuantity", "is_quantity_string", vec![STRING_TYPE], is_quantity)?;
    let q = quantity_type;
    env.add_member_overload("sign", "quantity_sign", q(), vec![], q_sign)?;
    env.add_member_overload("isInteger", "quantity_is_integer", q(), vec![], q_is_integer)?;
    env.add_member_overload("asInteger", "quantity_as_integer", q(), vec![], q_as_integer)?;
    env.add_member_overload(
        "asApproximateFloat",
        "quantity_as_float",
        q(),
        vec![],
        q_as_float,
    )?;
    env.add_member_overload("isGreaterThan", "quantity_gt", q(), vec![q()], q_greater)?;
    env.add_member_overload("isLessThan", "quantity_lt", q(), vec![q()], q_less)?;
    env.add_member_overload("compareTo", "quantity_compare", q(), vec![q()], q_compare)?;
    env.add_member_overload("add", "quantity_add", q(), vec![q()], q_add)?;
    env.add_member_overload("add", "quantity_add_int", q(), vec![INT_TYPE], q_add)?;
    env.add_member_overload("sub", "quantity_sub", q(), vec![q()], q_sub)?;
    env.add_member_overload("sub", "quantity_sub_int", q(), vec![INT_TYPE], q_sub)?;
    Ok(())
}

type Answer<'b, 'v> = std::result::Result<CowVal<'b, 'v>, ExecutionError>;

/// The arguments as plain values (lists and maps copied), receiver first.
fn values(args: &[CowVal<'_, '_>]) -> std::result::Result<Vec<Value>, ExecutionError> {
    args.iter().map(|a| Value::try_from(a.as_ref())).collect()
}

fn out<'b, 'v>(value: Value) -> Answer<'b, 'v> {
    let boxed: Box<dyn ::cel::common::value::Val> = value.try_into()?;
    Ok(CowVal::Owned(boxed))
}

fn fail(function: &str, message: impl ToString) -> ExecutionError {
    ExecutionError::function_error(function, message)
}

fn list_arg<'a>(
    values: &'a [Value],
    at: usize,
    function: &str,
) -> std::result::Result<&'a [Value], ExecutionError> {
    match values.get(at) {
        Some(Value::List(items)) => Ok(items.as_slice()),
        _ => Err(fail(function, "expected a list")),
    }
}

fn string_arg<'a>(
    values: &'a [Value],
    at: usize,
    function: &str,
) -> std::result::Result<&'a str, ExecutionError> {
    match values.get(at) {
        Some(Value::String(s)) => Ok(s.as_str()),
        _ => Err(fail(function, "expected a string")),
    }
}

/// CEL's ordering of two comparable values, numbers compared across int, uint and double.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::UInt(x), Value::UInt(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::UInt(y)) => Some(i128::from(*x).cmp(&i128::from(*y))),
        (Value::UInt(x), Value::Int(y)) => Some(i128::from(*x).cmp(&i128::from(*y))),
        _ => number(a)?.partial_cmp(&number(b)?),
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::UInt(u) => Some(*u as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// CEL equality: numbers equal across types, lists and maps element by element.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.map.len() == y.map.len()
                && x
                    .map
                    .iter()
                    .all(|(k, v)| y.map.get(k).is_some_and(|w| equal(v, w)))
        }
        _ if number(a).is_some() && number(b).is_some() => {
            compare(a, b) == Some(Ordering::Equal)
        }
        _ => a == b,
    }
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let values = values(&args)?;
    let items = list_arg(&values, 0, "isSorted")?;
    let mut sorted = true;
    for pair in items.windows(2) {
        match compare(&pair[0], &pair[1]) {
            Some(Ordering::Greater) => sorted = false,
            Some(_) => {}
            None => return Err(fail("isSorted", "list elements must be comparable")),
        }
    }
    out(Value::Bool(sorted))
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let values = values(&args)?;
    let items = list_arg(&values, 0, "sum")?;
    let overflow = || ExecutionError::Overflow("sum", Value::Null, Value::Null);
    let total = match items.first() {
        None | Some(Value::Int(_)) => {
            let mut total: i64 = 0;
            for item in items {
                let Value::Int(i) = item else {
                    return Err(fail("sum", "list elements must be of one numeric type"));
                };
                total = total.checked_add(*i).ok_or_else(overflow)?;
            }
            Value::Int(total)
        }
        Some(Value::UInt(_)) => {
            let mut total: u64 = 0;
            for item in items {
                let Value::UInt(u) = item else {
                    return Err(fail("sum", "list elements must be of one numeric type"));
                };
                total = total.checked_add(*u).ok_or_else(overflow)?;
            }
            Value::UInt(total)
        }
        Some(_) => Value::Float(
            items
                .iter()
                .map(|v| number(v).ok_or_else(|| fail("sum", "list elements must be numbers")))
                .sum::<std::result::Result<f64, _>>()?,
        ),
    };
    out(total)
}

fn extreme<'b, 'v>(args: Vec<CowVal<'b, 'v>>, function: &str, keep: Ordering) -> Answer<'b, 'v> {
    let values = values(&args)?;
    let items = list_arg(&values, 0, function)?;
    let mut best = items
        .first()
        .ok_or_else(|| fail(function, format!("{function} called on empty list")))?;
    for item in &items[1..] {
        match compare(item, best) {
            Some(order) if order == keep => best = item,
            Some(_) => {}
            None => return Err(fail(function, "list elements must be comparable")),
        }
    }
    out(best.clone())
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    extreme(args, "min", Ordering::Less)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    extreme(args, "max", Ordering::Greater)
}

fn position<'b, 'v>(args: Vec<CowVal<'b, 'v>>, last: bool) -> Answer<'b, 'v> {
    let values = values(&args)?;
    let items = list_arg(&values, 0, "indexOf")?;
    let wanted = values
        .get(1)
        .ok_or_else(|| ExecutionError::invalid_argument_count(2, values.len()))?;
    let found = if last {
        items.iter().rposition(|v| equal(v, wanted))
    } else {
        items.iter().position(|v| equal(v, wanted))
    };
    out(Value::Int(found.map_or(-1, |i| i as i64)))
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    position(args, false)
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    position(args, true)
}

fn two_lists<'a>(
    values: &'a [Value],
    function: &str,
) -> std::result::Result<(&'a [Value], &'a [Value]), ExecutionError> {
    Ok((list_arg(values, 0, function)?, list_arg(values, 1, function)?))
}

fn contains_all(whole: &[Value], part: &[Value]) -> bool {
    part.iter().all(|p| whole.iter().any(|w| equal(w, p)))
}

fn sets_contains<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let values = values(&args)?;
    let (a, b) = two_lists(&values, "sets.contains")?;
    out(Value::Bool(contains_all(a, b)))
}

fn sets_equivalent<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let values = values(&args)?;
    let (a, b) = two_lists(&values, "sets.equivalent")?;
    out(Value::Bool(contains_all(a, b) && contains_all(b, a)))
}

fn sets_intersects<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let values = values(&args)?;
    let (a, b) = two_lists(&values, "sets.intersects")?;
    out(Value::Bool(a.iter().any(|x| b.iter().any(|y| equal(x, y)))))
}

thread_local! {
    /// Compiled patterns: a rule runs on every object, its pattern is compiled once per thread.
    static PATTERNS: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
}

fn with_pattern<T>(
    pattern: &str,
    function: &str,
    f: impl FnOnce(&regex::Regex) -> T,
) -> std::result::Result<T, ExecutionError> {
    PATTERNS.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(pattern) {
            let compiled = regex::Regex::new(pattern).map_err(|e| {
                fail(function, format!("error parsing regexp: {e}"))
            })?;
            if cache.len() > 256 {
                cache.clear();
            }
            cache.insert(pattern.to_string(), compiled);
        }
        let compiled = cache
            .get(pattern)
            .ok_or_else(|| fail(function, "pattern cache"))?;
        Ok(f(compiled))
    })
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let values = values(&args)?;
    let text = string_arg(&values, 0, "find")?;
    let pattern = string_arg(&values, 1, "find")?;
    let found = with_pattern(pattern, "find", |re| {
        re.find(text).map(|m| m.as_str().to_string()).unwrap_or_default()
    })?;
    out(Value::String(Arc::new(found)))
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let values = values(&args)?;
    let text = string_arg(&values, 0, "findAll")?;
    let pattern = string_arg(&values, 1, "findAll")?;
    let limit = match values.get(2) {
        Some(Value::Int(n)) if *n >= 0 => Some(*n as usize),
        _ => None,
    };
    let found = with_pattern(pattern, "findAll", |re| {
        re.find_iter(text)
            .take(limit.unwrap_or(usize::MAX))
            .map(|m| Value::String(Arc::new(m.as_str().to_string())))
            .collect::<Vec<_>>()
    })?;
    out(Value::List(Arc::new(found)))
}

/// A URL as Go's `net/url` splits one (the Kubernetes URL library is built on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    scheme: String,
    host: String,
    path: String,
    query: String,
}

impl Opaque for Url {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.URL"
    }
}

/// Parses `raw` as `url.ParseRequestURI` does: an absolute URL, or an absolute path.
pub fn parse_url(raw: &str) -> std::result::Result<Url, String> {
    let bad = |why: &str| format!("parse {raw:?}: {why}");
    if raw.is_empty() {
        return Err(bad("empty url"));
    }
    let (rest, query) = match raw.split_once('?') {
        Some((rest, query)) => (rest, query.to_string()),
        None => (raw, String::new()),
    };
    let (scheme, rest) = match scheme_of(rest) {
        Ok(split) => split,
        Err(why) => return Err(bad(why)),
    };
    if !rest.starts_with('/') && scheme.is_empty() {
        return Err(bad("invalid URI for request"));
    }
    let (host, path) = match rest.strip_prefix("//") {
        Some(after) if !scheme.is_empty() && !after.starts_with('/') => {
            let end = after.find('/').unwrap_or(after.len());
            let authority = &after[..end];
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if let Some((_, port)) = host.rsplit_once(':')
                && !host.ends_with(']')
                && !port.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad(&format!("invalid port \":{port}\" after host")));
            }
            (host.to_string(), after[end..].to_string())
        }
        _ => (String::new(), rest.to_string()),
    };
    Ok(Url {
        scheme: scheme.to_string(),
        host,
        path,
        query,
    })
}

fn scheme_of(raw: &str) -> std::result::Result<(&str, &str), &'static str> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme"),
            ':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let values = values(&args)?;
    let raw = string_arg(&values, 0, "url")?;
    let parsed = parse_url(raw)
        .map_err(|e| fail("url", format!("URL parse error during conversion from string: {e}")))?;
    out(Value::Opaque(Arc::new(parsed)))
}

fn is_url<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let values = values(&args)?;
    out(Value::Bool(parse_url(string_arg(&values, 0, "isURL")?).is_ok()))
}

fn url_arg(args: &[CowVal<'_, '_>], function: &str) -> std::result::Result<Url, ExecutionError> {
    match values(args)?.first() {
        Some(Value::Opaque(o)) => o
            .downcast_ref::<Url>()
            .cloned()
            .ok_or_else(|| fail(function, "expected a URL")),
        _ => Err(fail(function, "expected a URL")),
    }
}

fn text<'b, 'v>(s: String) -> Answer<'b, 'v> {
    out(Value::String(Arc::new(s)))
}

fn url_scheme<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    text(url_arg(&args, "getScheme")?.scheme)
}

fn url_host<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    text(url_arg(&args, "getHost")?.host)
}

/// The host without its port; an IPv6 literal without its brackets.
fn host_and_port(host: &str) -> (&str, &str) {
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.split_once(']') {
            Some((ip, rest)) => (ip, rest.strip_prefix(':').unwrap_or_default()),
            None => (inner, ""),
        };
    }
    host.split_once(':').unwrap_or((host, ""))
}

fn url_hostname<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let url = url_arg(&args, "getHostname")?;
    text(host_and_port(&url.host).0.to_string())
}

fn url_port<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let url = url_arg(&args, "getPort")?;
    text(host_and_port(&url.host).1.to_string())
}

fn url_path<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    text(url_arg(&args, "getEscapedPath")?.path)
}

fn unescape_query(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    Some(b) => {
                        decoded.push(b);
                        i += 2;
                    }
                    None => decoded.push(b'%'),
                }
            }
            b => decoded.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn url_query<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let url = url_arg(&args, "getQuery")?;
    let mut query: HashMap<Key, Vec<Value>> = HashMap::new();
    for pair in url.query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        query
            .entry(Key::String(Arc::new(unescape_query(key))))
            .or_default()
            .push(Value::String(Arc::new(unescape_query(value))));
    }
    let map = query
        .into_iter()
        .map(|(k, v)| (k, Value::List(Arc::new(v))))
        .collect::<HashMap<_, _>>();
    out(Value::Map(Map { map: Arc::new(map) }))
}

/// A Kubernetes quantity, exactly, in units of 10⁻⁹ (the smallest suffix, `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i128);

impl Opaque for Quantity {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.Quantity"
    }
}

const QUANTITY_FORMAT: &str = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
const NANOS: i128 = 1_000_000_000;

/// Parses a quantity as `resource.ParseQuantity` does; precision below `1n` rounds up.
pub fn parse_quantity(raw: &str) -> std::result::Result<Quantity, String> {
    let bad = || QUANTITY_FORMAT.to_string();
    let (negative, unsigned) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    let number_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(bad());
    }
    // value = digits × 10^exp10 × 2^exp2
    let digits = format!("{whole}{fraction}");
    let mut exp10: i32 = -(fraction.len() as i32);
    let mut exp2: u32 = 0;
    match suffix {
        "" => {}
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        s if s.starts_with(['e', 'E']) => {
            let exponent: i32 = s[1..].parse().map_err(|_| bad())?;
            exp10 += exponent;
        }
        _ => return Err(bad()),
    }
    let digits = digits.trim_start_matches('0');
    let mut mantissa: i128 = 0;
    for d in digits.bytes() {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    let too_big = || "quantity is too large".to_string();
    let mut nanos = mantissa
        .checked_mul(1i128 << exp2)
        .ok_or_else(too_big)?;
    let scale = exp10 + 9;
    if scale >= 0 {
        nanos = nanos
            .checked_mul(10i128.checked_pow(scale as u32).ok_or_else(too_big)?)
            .ok_or_else(too_big)?;
    } else {
        let divisor = 10i128.checked_pow(scale.unsigned_abs()).unwrap_or(i128::MAX);
        nanos = nanos / divisor + i128::from(nanos % divisor != 0);
    }
    Ok(Quantity(if negative { -nanos } else { nanos }))
}

fn quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let values = values(&args)?;
    let parsed = parse_quantity(string_arg(&values, 0, "quantity")?)
        .map_err(|e| fail("quantity", e))?;
    out(Value::Opaque(Arc::new(parsed)))
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let values = values(&args)?;
    out(Value::Bool(
        parse_quantity(string_arg(&values, 0, "isQuantity")?).is_ok(),
    ))
}

/// The quantity at `at`, or an int taken as a whole quantity.
fn quantity_at(
    args: &[CowVal<'_, '_>],
    at: usize,
    function: &str,
) -> std::result::Result<Quantity, ExecutionError> {
    match values(args)?.get(at) {
        Some(Value::Opaque(o)) => o
            .downcast_ref::<Quantity>()
            .copied()
            .ok_or_else(|| fail(function, "expected a quantity")),
        Some(Value::Int(i)) => Ok(Quantity(i128::from(*i) * NANOS)),
        _ => Err(fail(function, "expected a quantity")),
    }
}

fn q_sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let q = quantity_at(&args, 0, "sign")?;
    out(Value::Int(q.0.signum() as i64))
}

fn as_integer(q: Quantity) -> Option<i64> {
    (q.0 % NANOS == 0)
        .then(|| i64::try_from(q.0 / NANOS).ok())
        .flatten()
}

fn q_is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let q = quantity_at(&args, 0, "isInteger")?;
    out(Value::Bool(as_integer(q).is_some()))
}

fn q_as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let q = quantity_at(&args, 0, "asInteger")?;
    let i = as_integer(q).ok_or_else(|| fail("asInteger", "cannot convert value to integer"))?;
    out(Value::Int(i))
}

fn q_as_float<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let q = quantity_at(&args, 0, "asApproximateFloat")?;
    out(Value::Float(q.0 as f64 / NANOS as f64))
}

fn q_greater<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let (a, b) = (quantity_at(&args, 0, "isGreaterThan")?, quantity_at(&args, 1, "isGreaterThan")?);
    out(Value::Bool(a > b))
}

fn q_less<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let (a, b) = (quantity_at(&args, 0, "isLessThan")?, quantity_at(&args, 1, "isLessThan")?);
    out(Value::Bool(a < b))
}

fn q_compare<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let (a, b) = (quantity_at(&args, 0, "compareTo")?, quantity_at(&args, 1, "compareTo")?);
    out(Value::Int(a.cmp(&b) as i64))
}

fn q_add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let (a, b) = (quantity_at(&args, 0, "add")?, quantity_at(&args, 1, "add")?);
    let total = a.0.checked_add(b.0).ok_or_else(|| fail("add", "quantity overflow"))?;
    out(Value::Opaque(Arc::new(Quantity(total))))
}

fn q_sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Answer<'b, 'v> {
    let (a, b) = (quantity_at(&args, 0, "sub")?, quantity_at(&args, 1, "sub")?);
    let total = a.0.checked_sub(b.0).ok_or_else(|| fail("sub", "quantity overflow"))?;
    out(Value::Opaque(Arc::new(Quantity(total))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::cel::Context;

    fn eval(expr: &str) -> std::result::Result<Value, ExecutionError> {
        let program = ENV
            .compile(expr)
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        let context = Context::with_env(Arc::clone(&ENV));
        program.execute(&context)
    }

    fn assert_true(expr: &str) {
        assert_eq!(eval(expr), Ok(Value::Bool(true)), "{expr}");
    }

    #[test]
    fn the_standard_macros_and_strings_extension_are_there() {
        for expr in [
            "has({'a': 1}.a) && !has({'a': 1}.b)",
            "[1, 2, 3].all(x, x > 0) && [1, 2].exists(x, x == 2)",
            "[1, 2, 3].exists_one(x, x == 2)",
            "[1, 2].map(x, x * 2) == [2, 4] && [1, 2, 3].filter(x, x > 1) == [2, 3]",
            "'AbC'.lowerAscii() == 'abc' && 'abc'.upperAscii() == 'ABC'",
            "'a,b'.split(',') == ['a', 'b'] && ['a', 'b'].join('-') == 'a-b'",
            "'hello'.replace('l', 'L') == 'heLLo' && '  x '.trim() == 'x'",
            "'hello'.substring(1, 3) == 'el' && 'hello'.charAt(1) == 'e'",
            "'hello'.indexOf('l') == 2 && 'hello'.lastIndexOf('l') == 3",
            "'abc'.matches('^a.c$') && 'abc'.startsWith('a') && 'abc'.endsWith('c')",
            "'abc'.contains('b') && size('abc') == 3",
        ] {
            assert_true(expr);
        }
    }

    #[test]
    fn the_lists_library() {
        assert_true("[1, 2, 2, 5].isSorted() && !['b', 'a'].isSorted() && [].isSorted()");
        assert_true("[1, 2, 3].sum() == 6 && [].sum() == 0 && [1.5, 2.5].sum() == 4.0");
        assert_true("[3, 1, 2].min() == 1 && [3, 1, 2].max() == 3 && ['b', 'a'].min() == 'a'");
        assert_true("[1, 2, 1].indexOf(1) == 0 && [1, 2, 1].lastIndexOf(1) == 2");
        assert_true("[1, 2].indexOf(7) == -1");
        let empty = eval("[].min()").expect_err("min of nothing");
        assert!(empty.to_string().contains("min called on empty list"), "{empty}");
        let overflow = eval("[9223372036854775807, 1].sum()").expect_err("overflow");
        assert!(matches!(overflow, ExecutionError::Overflow(..)), "{overflow}");
    }

    #[test]
    fn the_sets_library() {
        assert_true("sets.contains([1, 2, 3], [3, 1]) && !sets.contains([1], [2])");
        assert_true("sets.equivalent([1, 2, 1], [2, 1]) && !sets.equivalent([1], [1, 2])");
        assert_true("sets.intersects([1, 2], [2, 3]) && !sets.intersects([1], [2])");
    }

    #[test]
    fn the_regex_library() {
        assert_true("'abc 123 def 456'.find('[0-9]+') == '123'");
        assert_true("'abc'.find('[0-9]+') == ''");
        assert_true("'a1 b2 c3'.findAll('[a-z][0-9]') == ['a1', 'b2', 'c3']");
        assert_true("'a1 b2 c3'.findAll('[a-z][0-9]', 2) == ['a1', 'b2']");
        let bad = eval("'x'.find('(')").expect_err("bad pattern");
        assert!(bad.to_string().contains("error parsing regexp"), "{bad}");
    }

    #[test]
    fn the_url_library() {
        assert_true("isURL('https://example.com:8080/a/b?x=1&x=2&y=z') && !isURL('relative/path')");
        assert_true("isURL('/absolute/path') && !isURL('')");
        assert_true("url('https://user@example.com:8080/a/b?x=1&x=2').getScheme() == 'https'");
        assert_true("url('https://example.com:8080/a').getHost() == 'example.com:8080'");
        assert_true("url('https://example.com:8080/a').getHostname() == 'example.com'");
        assert_true("url('https://example.com:8080/a').getPort() == '8080'");
        assert_true("url('https://[::1]:80/').getHostname() == '::1'");
        assert_true("url('https://example.com/a/b').getEscapedPath() == '/a/b'");
        assert_true("url('https://e.com/?x=1&x=2&y=a+b').getQuery() == {'x': ['1', '2'], 'y': ['a b']}");
        let bad = eval("url('not a url')").expect_err("bad url");
        assert!(
            bad.to_string().contains("URL parse error during conversion from string"),
            "{bad}"
        );
    }

    #[test]
    fn the_quantity_library() {
        assert_true("quantity('1Gi').isGreaterThan(quantity('1000Mi'))");
        assert_true("quantity('500m').isLessThan(quantity('1'))");
        assert_true("quantity('1') == quantity('1000m') && quantity('1k').compareTo(quantity('1000')) == 0");
        assert_true("quantity('1.5').isInteger() == false && quantity('2k').asInteger() == 2000");
        assert_true("quantity('250m').asApproximateFloat() == 0.25");
        assert_true("quantity('-3').sign() == -1 && quantity('0').sign() == 0");
        assert_true("quantity('1').add(quantity('500m')) == quantity('1500m')");
        assert_true("quantity('1').add(2) == quantity('3') && quantity('3').sub(1) == quantity('2')");
        assert_true("quantity('1e3') == quantity('1k') && quantity('1Ki').asInteger() == 1024");
        assert_true("isQuantity('100Mi') && !isQuantity('100MB') && !isQuantity('')");
        let bad = eval("quantity('ten')").expect_err("bad quantity");
        assert!(bad.to_string().contains("quantities must match"), "{bad}");
        let fraction = eval("quantity('1.5').asInteger()").expect_err("not an integer");
        assert!(fraction.to_string().contains("cannot convert value to integer"));
    }

    #[test]
    fn every_function_the_engine_registers_is_known_to_kubernetes() {
        for name in [
            "isSorted", "sum", "find", "findAll", "url", "getQuery", "quantity", "asInteger",
        ] {
            assert!(KUBERNETES_FUNCTIONS.contains(&name), "{name}");
        }
    }
}
