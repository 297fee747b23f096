//! Avro application events of about a requested size in Confluent's wire format (magic
//! byte, schema id 1, the Avro binary), written with the Apache Avro crate as a Confluent
//! serializer would: the values of `floe-lakebench landing --values avro` and of the
//! `avro` payload kind.

use apache_avro::types::Value;
use apache_avro::Schema;

/// The events' schema: a dozen fields of the kinds analysts query, and a text field that
/// brings each record to the requested size.
pub const SCHEMA: &str = r#"{"type":"record","name":"Event","namespace":"bench","fields":[
 {"name":"id","type":"long"},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"user","type":"string"},
 {"name":"session","type":"string"},
 {"name":"page","type":"string"},
 {"name":"referrer","type":["null","string"],"default":null},
 {"name":"country","type":"string"},
 {"name":"device","type":{"type":"enum","name":"Device","symbols":["DESKTOP","PHONE","TABLET"]}},
 {"name":"amount","type":"double"},
 {"name":"quantity","type":"int"},
 {"name":"tags","type":{"type":"array","items":"string"}},
 {"name":"attrs","type":{"type":"map","values":"string"}},
 {"name":"text","type":"string"}]}"#;

const WORDS: &[&str] = &[
    "order",
    "cart",
    "search",
    "banner",
    "promo",
    "checkout",
    "shipping",
    "return",
    "review",
    "gift",
    "coupon",
    "wishlist",
    "account",
    "login",
    "newsletter",
    "support",
    "invoice",
];
const PAGES: &[&str] = &[
    "/",
    "/search",
    "/cart",
    "/checkout",
    "/p/123",
    "/p/456",
    "/help",
];
const COUNTRIES: &[&str] = &["DE", "FR", "US", "JP", "BR", "IN", "NL", "SE"];

/// Makes event values of one size.
pub struct Events {
    schema: Schema,
    size: usize,
}

impl Events {
    /// Events of about `size` bytes in the wire format.
    pub fn new(size: usize) -> anyhow::Result<Self> {
        Ok(Self {
            schema: Schema::parse_str(SCHEMA)?,
            size,
        })
    }

    /// Event `seq` in the wire format.
    pub fn get(&self, seq: u64) -> anyhow::Result<Vec<u8>> {
        let mut rng = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            usize::try_from(rng % n as u64).unwrap_or(0)
        };
        let fixed = |v: Vec<(&str, Value)>| -> Vec<(String, Value)> {
            v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        let mut fields = fixed(vec![
            ("id", Value::Long(seq as i64)),
            ("ts", Value::TimestampMillis(1_790_000_000_000 + seq as i64)),
            ("user", Value::String(format!("user-{}", next(50_000)))),
            (
                "session",
                Value::String(format!("{:016x}", seq.wrapping_mul(0x2545_F491_4F6C_DD1D))),
            ),
            ("page", Value::String(PAGES[next(PAGES.len())].to_string())),
            (
                "referrer",
                if next(3) == 0 {
                    Value::Union(0, Box::new(Value::Null))
                } else {
                    Value::Union(
                        1,
                        Box::new(Value::String(format!("https://ref{}.example", next(20)))),
                    )
                },
            ),
            (
                "country",
                Value::String(COUNTRIES[next(COUNTRIES.len())].to_string()),
            ),
            ("device", {
                let d = next(3);
                Value::Enum(d as u32, ["DESKTOP", "PHONE", "TABLET"][d].to_string())
            }),
            ("amount", Value::Double(next(100_000) as f64 / 100.0)),
            ("quantity", Value::Int(next(10) as i32 + 1)),
            (
                "tags",
                Value::Array(
                    (0..next(4))
                        .map(|_| Value::String(WORDS[next(WORDS.len())].into()))
                        .collect(),
                ),
            ),
            (
                "attrs",
                Value::Map(
                    (0..next(3))
                        .map(|i| {
                            (
                                format!("k{i}"),
                                Value::String(WORDS[next(WORDS.len())].into()),
                            )
                        })
                        .collect(),
                ),
            ),
        ]);
        let head = apache_avro::to_avro_datum(
            &self.schema,
            Value::Record({
                let mut f = fields.clone();
                f.push(("text".into(), Value::String(String::new())));
                f
            }),
        )?
        .len();
        let mut text = String::new();
        while text.len() + head + 5 + 2 < self.size {
            text.push_str(WORDS[next(WORDS.len())]);
            text.push(' ');
        }
        text.truncate(self.size.saturating_sub(head + 5 + 2));
        fields.push(("text".into(), Value::String(text)));
        let mut out = vec![0u8, 0, 0, 0, 1];
        out.extend(apache_avro::to_avro_datum(
            &self.schema,
            Value::Record(fields),
        )?);
        Ok(out)
    }
}
