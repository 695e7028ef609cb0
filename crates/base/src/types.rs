//! The types of params and of providers' schema attributes: `string`,
//! `number`, `bool`, `any`, `list(T)`, `set(T)`, `map(T)`, `object({…})`.
//!
//! Invariants: no dependency on the language's syntax tree (the parser
//! builds these, provider schemas declare them, the evaluator converts to
//! them); `Display` prints the type as the language writes it.

/// Types of params and schema attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    Any,
    String,
    Number,
    Bool,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(Vec<(String, Type)>),
}

impl std::fmt::Display for Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Type::Any => write!(f, "any"),
            Type::String => write!(f, "string"),
            Type::Number => write!(f, "number"),
            Type::Bool => write!(f, "bool"),
            Type::List(t) => write!(f, "list({t})"),
            Type::Set(t) => write!(f, "set({t})"),
            Type::Map(t) => write!(f, "map({t})"),
            Type::Object(fields) => {
                write!(f, "object({{")?;
                for (i, (k, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{k} = {t}")?;
                }
                write!(f, "}})")
            }
        }
    }
}
