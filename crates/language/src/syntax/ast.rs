//! The abstract syntax tree. Every node carries its [`Span`]; nothing here
//! knows about pest.

use crate::diagnostic::Span;

#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, Default)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub enum Item {
    Param(ParamDecl),
    Let(LetDecl),
    Provider(ProviderDecl),
    Resource(ResourceDecl),
    /// `data <provider>.<type> <name> { … }`: a data source, read while
    /// planning. Its header and body are a resource's.
    Data(ResourceDecl),
    Output(OutputDecl),
    /// `<kind> <name> from "<source>" [version "<constraint>"] { inputs }`
    Component(ComponentDecl),
    /// `import catalogue from "<git url>" [version "<constraint>"]`
    Import(ImportDecl),
    /// `meta { kind = "stack"  description = "…" }` (modules)
    Meta(MetaDecl),
}

/// A literal string with its span (sources, versions).
#[derive(Debug, Clone, PartialEq)]
pub struct LitStr {
    pub value: String,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct ComponentDecl {
    pub kind: Ident,
    pub name: Ident,
    pub source: LitStr,
    pub version: Option<LitStr>,
    pub body: Body,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct ImportDecl {
    pub name: Ident,
    pub source: LitStr,
    pub version: Option<LitStr>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct MetaDecl {
    pub body: Body,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct ParamDecl {
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub default: Option<Expr>,
    pub body: Option<Body>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct LetDecl {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct ProviderDecl {
    pub name: Ident,
    pub alias: Option<Ident>,
    pub body: Body,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct ResourceDecl {
    pub provider: Ident,
    pub rtype: Ident,
    pub name: Ident,
    pub body: Body,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct OutputDecl {
    pub name: Ident,
    pub value: Expr,
    pub body: Option<Body>,
    pub span: Span,
}

#[derive(Debug, Clone, Default)]
pub struct Body {
    pub attrs: Vec<Attribute>,
    pub blocks: Vec<Block>,
    pub span: Span,
}

impl Body {
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attrs.iter().find(|a| a.name.name == name)
    }
    pub fn block(&self, name: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| b.name.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Block {
    pub name: Ident,
    pub body: Body,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TypeExpr {
    pub ty: Type,
    pub span: Span,
}

/// Types of params and schema attributes live below the language (providers'
/// schemas use them too).
pub use crate::types::Type;

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinaryOp {
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq | BinaryOp::Ne => 3,
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => 4,
            BinaryOp::Add | BinaryOp::Sub => 5,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 6,
        }
    }
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
        }
    }
}

#[derive(Debug, Clone)]
pub enum TemplatePart {
    Literal(String),
    Interp(Expr),
}

#[derive(Debug, Clone)]
pub enum ObjectKey {
    /// `name = …` or `"name" = …`: a literal key.
    Literal(String, Span),
    /// `(expr) = …`: a computed key.
    Expr(Expr),
}

/// One step after a splat, applied to every element.
#[derive(Debug, Clone)]
pub enum Step {
    Attr(Ident),
    Index(Expr),
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string or heredoc; a single literal part is a plain string.
    Template(Vec<TemplatePart>),
    List(Vec<Expr>),
    Object(Vec<(ObjectKey, Expr)>),
    Variable(Ident),
    GetAttr(Box<Expr>, Ident),
    Index(Box<Expr>, Box<Expr>),
    Splat(Box<Expr>, Vec<Step>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Conditional(Box<Expr>, Box<Expr>, Box<Expr>),
    Call(Ident, Vec<Expr>),
    ForList {
        key_var: Option<Ident>,
        value_var: Ident,
        collection: Box<Expr>,
        body: Box<Expr>,
        cond: Option<Box<Expr>>,
    },
    ForMap {
        key_var: Option<Ident>,
        value_var: Ident,
        collection: Box<Expr>,
        key: Box<Expr>,
        value: Box<Expr>,
        cond: Option<Box<Expr>>,
    },
}

impl Expr {
    /// The static traversal `root.a.b[0]["k"]` behind this expression, when it
    /// is one (used for references and addresses).
    pub fn traversal(&self) -> Option<(&Ident, Vec<TraversalStep<'_>>)> {
        let mut steps = Vec::new();
        let mut cur = self;
        loop {
            match &cur.kind {
                ExprKind::Variable(root) => {
                    steps.reverse();
                    return Some((root, steps));
                }
                ExprKind::GetAttr(inner, name) => {
                    steps.push(TraversalStep::Attr(name));
                    cur = inner;
                }
                ExprKind::Index(inner, key) => {
                    steps.push(TraversalStep::Index(key));
                    cur = inner;
                }
                _ => return None,
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum TraversalStep<'a> {
    Attr(&'a Ident),
    Index(&'a Expr),
}

/// An environment file (`envs/**/<name>.plinth`, see `crate::envs`): top-level
/// assignments and `backend` blocks. Declarations (`param`, `resource`, …)
/// are not allowed there; the parser records where they are so that the
/// caller can refuse them with a clear message.
#[derive(Debug, Clone, Default)]
pub struct EnvFile {
    pub attrs: Vec<Attribute>,
    pub backends: Vec<BackendBlock>,
    /// The keyword of each declaration found (`"param"`, `"resource"`, …)
    /// and the span of its keyword and name.
    pub declarations: Vec<(&'static str, Span)>,
}

/// `backend "<kind>" { … }` in an environment file.
#[derive(Debug, Clone)]
pub struct BackendBlock {
    /// None when the kind string interpolates (it must be a literal).
    pub kind: Option<String>,
    pub kind_span: Span,
    pub body: Body,
    /// From the keyword to the closing brace.
    pub span: Span,
}
