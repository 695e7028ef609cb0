//! `random`: values generated once at create and kept in state, like
//! Terraform's random provider. Every input forces replacement (a new value);
//! `keepers` exists only to trigger that.

use super::*;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};

pub struct RandomFactory {
    schema: ProviderSchema,
}

fn keepers() -> AttrSchema {
    AttrSchema::optional(Type::Map(Box::new(Type::String)), "arbitrary values; a change generates a new value").forces_replacement()
}

impl RandomFactory {
    pub fn new() -> Self {
        let flag = |d: &'static str| AttrSchema::optional(Type::Bool, d).default(Value::Bool(true)).forces_replacement();
        let min = |d: &'static str| AttrSchema::optional(Type::Number, d).default(Value::Int(0)).forces_replacement();
        let password = ResourceSchema::new("A random password, generated once and kept in state (sensitive).")
            .attr("length", AttrSchema::required(Type::Number, "the number of characters").forces_replacement())
            .attr("special", flag("include special characters"))
            .attr("upper", flag("include upper-case letters"))
            .attr("lower", flag("include lower-case letters"))
            .attr("numeric", flag("include digits"))
            .attr("min_special", min("at least this many special characters"))
            .attr("min_upper", min("at least this many upper-case letters"))
            .attr("min_lower", min("at least this many lower-case letters"))
            .attr("min_numeric", min("at least this many digits"))
            .attr("override_special", AttrSchema::optional(Type::String, "the special characters to use instead of !@#$%&*()-_=+[]{}<>:?").forces_replacement())
            .attr("keepers", keepers())
            .attr("result", AttrSchema::computed(Type::String, "the generated password").sensitive())
            .attr("id", AttrSchema::computed(Type::String, "always `none`"));
        let id = ResourceSchema::new("Random bytes, generated once and kept in state, in several encodings.")
            .attr("byte_length", AttrSchema::required(Type::Number, "the number of random bytes").forces_replacement())
            .attr("prefix", AttrSchema::optional(Type::String, "text put before `b64_url`, `hex` and `dec`").forces_replacement())
            .attr("keepers", keepers())
            .attr("id", AttrSchema::computed(Type::String, "URL-safe base64 of the bytes (with the prefix)"))
            .attr("b64_url", AttrSchema::computed(Type::String, "URL-safe base64 without padding"))
            .attr("b64_std", AttrSchema::computed(Type::String, "standard base64 with padding"))
            .attr("hex", AttrSchema::computed(Type::String, "lower-case hexadecimal"))
            .attr("dec", AttrSchema::computed(Type::String, "the bytes as a decimal number"));
        let uuid = ResourceSchema::new("A random UUID (v4), generated once and kept in state.")
            .attr("keepers", keepers())
            .attr("result", AttrSchema::computed(Type::String, "the UUID"))
            .attr("id", AttrSchema::computed(Type::String, "the UUID"));
        let mut schema = ProviderSchema::default();
        schema.resources.insert("password", password);
        schema.resources.insert("id", id);
        schema.resources.insert("uuid", uuid);
        RandomFactory { schema }
    }
}

impl Default for RandomFactory {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderFactory for RandomFactory {
    fn name(&self) -> &'static str {
        "random"
    }
    fn schema(&self) -> &ProviderSchema {
        &self.schema
    }
    fn configure(&self, _config: &Map, _ctx: &ProviderContext) -> Result<Arc<dyn Provider>, Diagnostic> {
        Ok(Arc::new(Random { schema: self.schema.clone() }))
    }
}

struct Random {
    schema: ProviderSchema,
}

const DEFAULT_SPECIAL: &str = "!@#$%&*()-_=+[]{}<>:?";

fn num(config: &Map, name: &str) -> i64 {
    config.get(name).and_then(Value::as_i64).unwrap_or(0)
}
fn flag(config: &Map, name: &str) -> bool {
    config.get(name).and_then(Value::as_bool).unwrap_or(true)
}

fn generate_password(config: &Map) -> Result<String, Diagnostic> {
    let length = num(config, "length");
    if !(1..=4096).contains(&length) {
        return Err(provider_error("P6101", "invalid password length", "`length` must be between 1 and 4096."));
    }
    let special = config.get("override_special").and_then(Value::as_str).unwrap_or(DEFAULT_SPECIAL).to_string();
    let classes: Vec<(bool, Vec<char>, i64)> = vec![
        (flag(config, "upper"), ('A'..='Z').collect(), num(config, "min_upper")),
        (flag(config, "lower"), ('a'..='z').collect(), num(config, "min_lower")),
        (flag(config, "numeric"), ('0'..='9').collect(), num(config, "min_numeric")),
        (flag(config, "special"), special.chars().collect(), num(config, "min_special")),
    ];
    let mut rng = OsRng;
    let mut chars: Vec<char> = Vec::new();
    let mut pool: Vec<char> = Vec::new();
    for (enabled, set, minimum) in &classes {
        if *enabled && !set.is_empty() {
            for _ in 0..(*minimum).max(0) {
                chars.push(set[rng.gen_range(0..set.len())]);
            }
            pool.extend(set);
        }
    }
    if pool.is_empty() {
        return Err(provider_error("P6101", "no characters to choose from", "Enable at least one of `upper`, `lower`, `numeric` and `special`."));
    }
    if chars.len() as i64 > length {
        return Err(provider_error("P6101", "minimums exceed the length", "The sum of `min_*` values must not exceed `length`."));
    }
    while (chars.len() as i64) < length {
        chars.push(pool[rng.gen_range(0..pool.len())]);
    }
    // Shuffle so the minimum characters are not all at the front.
    for i in (1..chars.len()).rev() {
        let j = rng.gen_range(0..=i);
        chars.swap(i, j);
    }
    Ok(chars.into_iter().collect())
}

fn decimal_of(bytes: &[u8]) -> String {
    // Big-endian bytes to a decimal string, by repeated division.
    let mut digits: Vec<u8> = bytes.to_vec();
    let mut out = Vec::new();
    while digits.iter().any(|&d| d != 0) {
        let mut rem: u32 = 0;
        for d in digits.iter_mut() {
            let cur = (rem << 8) | u32::from(*d);
            *d = (cur / 10) as u8;
            rem = cur % 10;
        }
        out.push(b'0' + rem as u8);
    }
    if out.is_empty() {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[async_trait]
impl Provider for Random {
    fn schema_of(&self, rtype: &str) -> Option<&ResourceSchema> {
        self.schema.resources.get(rtype)
    }
    async fn read(&self, req: ReadRequest) -> Result<Option<Observed>, Diagnostic> {
        Ok(req.prior)
    }
    async fn create(&self, req: CreateRequest) -> Result<Observed, Diagnostic> {
        use base64::Engine;
        let mut observed = req.config;
        match req.object.rtype.as_str() {
            "password" => {
                let password = generate_password(&observed)?;
                observed.insert("result".into(), Value::String(password));
                observed.insert("id".into(), Value::str("none"));
            }
            "id" => {
                let n = num(&observed, "byte_length");
                if !(1..=1024).contains(&n) {
                    return Err(provider_error("P6101", "invalid byte_length", "`byte_length` must be between 1 and 1024."));
                }
                let mut bytes = vec![0u8; n as usize];
                OsRng.fill_bytes(&mut bytes);
                let prefix = observed.get("prefix").and_then(Value::as_str).unwrap_or("").to_string();
                let b64_url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
                observed.insert("id".into(), Value::String(format!("{prefix}{b64_url}")));
                observed.insert("b64_url".into(), Value::String(format!("{prefix}{b64_url}")));
                observed.insert("b64_std".into(), Value::String(format!("{prefix}{}", base64::engine::general_purpose::STANDARD.encode(&bytes))));
                observed.insert("hex".into(), Value::String(format!("{prefix}{}", hex::encode(&bytes))));
                observed.insert("dec".into(), Value::String(format!("{prefix}{}", decimal_of(&bytes))));
            }
            _ => {
                let u = uuid::Uuid::new_v4().to_string();
                observed.insert("result".into(), Value::String(u.clone()));
                observed.insert("id".into(), Value::String(u));
            }
        }
        Ok(observed)
    }
    async fn update(&self, req: UpdateRequest) -> Result<Observed, Diagnostic> {
        // Every input forces replacement, so an update only refreshes inputs.
        let mut observed = req.prior;
        for (k, v) in req.config {
            observed.insert(k, v);
        }
        Ok(observed)
    }
    async fn delete(&self, _req: DeleteRequest) -> Result<(), Diagnostic> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_conversion() {
        assert_eq!(decimal_of(&[0x01, 0x00]), "256");
        assert_eq!(decimal_of(&[0xff, 0xff, 0xff, 0xff]), "4294967295");
        assert_eq!(decimal_of(&[0]), "0");
    }

    #[test]
    fn password_honours_classes_and_minimums() {
        let mut config = Map::default();
        config.insert("length".into(), Value::Int(12));
        config.insert("special".into(), Value::Bool(false));
        config.insert("upper".into(), Value::Bool(false));
        config.insert("min_numeric".into(), Value::Int(5));
        let p = generate_password(&config).unwrap();
        assert_eq!(p.chars().count(), 12);
        assert!(p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{p}");
        assert!(p.chars().filter(|c| c.is_ascii_digit()).count() >= 5, "{p}");
    }
}
