//! Checks that the compiled `xlreg.proto` is the original xlReg schema (the
//! *seed* below), field for field (docs/XLREG.md, introduction).
//!
//! The seed (`tests/data/xlreg-protobuf-spec.txt`, a verbatim copy of the
//! original) is read with a small line-based parser that knows just the
//! shapes the seed uses: a `package` line, `message` and `enum` blocks,
//! enum values `Name = N;` and fields `optional|repeated type Name = N;`.
//! Comments and the prose around the schema are skipped. The result is
//! compared in both directions with the descriptor set compiled into the
//! crate: package, syntax, every message and enum, every enum value and every
//! field's name, number, label and type. A mismatch fails with a message that
//! names the field and the seed line it comes from.

use std::collections::BTreeMap;

use prost::Message;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    field_descriptor_proto::{Label, Type},
};

/// The seed, copied unchanged from the shared seeds.
const SEED: &str = include_str!("data/xlreg-protobuf-spec.txt");

/// Counted by hand in the seed, so that a parser that silently skips lines
/// cannot pass.
const SEED_TAG_VALUES: usize = 13;
const SEED_TOKEN_FIELDS: usize = 7;
const SEED_XLREGMSG_FIELDS: usize = 19;

// ---- The seed, parsed ------------------------------------------------------

/// Label of a field as written in the seed (proto2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SeedLabel {
    Optional,
    Repeated,
    Required,
}

#[derive(Debug, Clone)]
struct SeedField {
    label: SeedLabel,
    /// The type as written: a scalar keyword or a (relative) type name.
    ty: String,
    name: String,
    number: i32,
    /// 1-based line in the seed, for error messages.
    line: usize,
}

#[derive(Debug, Clone)]
struct SeedValue {
    name: String,
    number: i32,
    line: usize,
}

/// What the seed declares. Messages and enums are keyed by their dotted path
/// inside the package (`XLRegMsg`, `XLRegMsg.Token`, `XLRegMsg.Tag`).
#[derive(Debug, Default, Clone)]
struct SeedSchema {
    package: Option<String>,
    messages: BTreeMap<String, Vec<SeedField>>,
    enums: BTreeMap<String, Vec<SeedValue>>,
}

#[derive(Debug)]
enum Block {
    Message(String),
    Enum(String),
}

impl Block {
    fn path(&self) -> &str {
        match self {
            Block::Message(p) | Block::Enum(p) => p,
        }
    }
}

/// Removes a `//` comment and surrounding blanks.
fn strip_comment(line: &str) -> &str {
    line.split_once("//").map_or(line, |(code, _)| code).trim()
}

/// Parses `Name = N;` (an enum value) or the tail of a field declaration.
fn parse_assignment(text: &str) -> Option<(String, i32)> {
    let body = text.strip_suffix(';')?.trim();
    let (name, number) = body.split_once('=')?;
    let name = name.trim();
    let valid_name = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid_name {
        return None;
    }
    Some((name.to_owned(), number.trim().parse().ok()?))
}

/// Parses `kind Name {`, returning `Name`.
fn parse_block_start<'a>(text: &'a str, kind: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(kind)?.strip_suffix('{')?.trim();
    (!rest.is_empty() && !rest.contains(char::is_whitespace)).then_some(rest)
}

/// Parses the seed. Lines outside any block that are not a `package` or
/// `message` line are prose and skipped; inside a block every line must be
/// understood, or parsing fails naming the line.
fn parse_seed(text: &str) -> Result<SeedSchema, String> {
    let mut schema = SeedSchema::default();
    let mut stack: Vec<Block> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = strip_comment(raw);
        if line.is_empty() {
            continue;
        }
        let scope = stack.last().map(|b| b.path().to_owned());
        let nested = |name: &str| match &scope {
            Some(outer) => format!("{outer}.{name}"),
            None => name.to_owned(),
        };
        if line == "}" {
            if stack.pop().is_none() {
                return Err(format!("line {line_no}: `}}` without an open block"));
            }
            continue;
        }
        if let Some(name) = parse_block_start(line, "message ") {
            let path = nested(name);
            if !matches!(stack.last(), None | Some(Block::Message(_))) {
                return Err(format!("line {line_no}: message {name} inside an enum"));
            }
            if schema.messages.insert(path.clone(), Vec::new()).is_some() {
                return Err(format!("line {line_no}: message {path} declared twice"));
            }
            stack.push(Block::Message(path));
            continue;
        }
        if let Some(name) = parse_block_start(line, "enum ") {
            let path = nested(name);
            if !matches!(stack.last(), None | Some(Block::Message(_))) {
                return Err(format!("line {line_no}: enum {name} inside an enum"));
            }
            if schema.enums.insert(path.clone(), Vec::new()).is_some() {
                return Err(format!("line {line_no}: enum {path} declared twice"));
            }
            stack.push(Block::Enum(path));
            continue;
        }
        match stack.last() {
            None => {
                if let Some(package) = line
                    .strip_prefix("package ")
                    .and_then(|p| p.strip_suffix(';'))
                {
                    if schema.package.replace(package.trim().to_owned()).is_some() {
                        return Err(format!("line {line_no}: second package line"));
                    }
                }
                // Anything else at top level is the seed's surrounding prose.
            }
            Some(Block::Enum(path)) => {
                let (name, number) = parse_assignment(line).ok_or_else(|| {
                    format!("line {line_no}: not an enum value in enum {path}: {raw:?}")
                })?;
                let values = schema.enums.get_mut(path).ok_or("enum vanished")?;
                values.push(SeedValue {
                    name,
                    number,
                    line: line_no,
                });
            }
            Some(Block::Message(path)) => {
                let field = parse_field(line, line_no).ok_or_else(|| {
                    format!("line {line_no}: not a field in message {path}: {raw:?}")
                })?;
                let fields = schema.messages.get_mut(path).ok_or("message vanished")?;
                fields.push(field);
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("seed ends inside {}", open.path()));
    }
    Ok(schema)
}

/// Parses `label type Name = N;`.
fn parse_field(line: &str, line_no: usize) -> Option<SeedField> {
    let (label, rest) = line.split_once(char::is_whitespace)?;
    let label = match label {
        "optional" => SeedLabel::Optional,
        "repeated" => SeedLabel::Repeated,
        "required" => SeedLabel::Required,
        _ => return None,
    };
    let (ty, rest) = rest.trim_start().split_once(char::is_whitespace)?;
    let (name, number) = parse_assignment(rest.trim())?;
    Some(SeedField {
        label,
        ty: ty.to_owned(),
        name,
        number,
        line: line_no,
    })
}

// ---- Comparison with the descriptor ----------------------------------------

/// The protobuf scalar types the seed may use.
fn scalar_type(ty: &str) -> Option<Type> {
    Some(match ty {
        "double" => Type::Double,
        "float" => Type::Float,
        "int32" => Type::Int32,
        "int64" => Type::Int64,
        "uint32" => Type::Uint32,
        "uint64" => Type::Uint64,
        "sint32" => Type::Sint32,
        "sint64" => Type::Sint64,
        "fixed32" => Type::Fixed32,
        "fixed64" => Type::Fixed64,
        "sfixed32" => Type::Sfixed32,
        "sfixed64" => Type::Sfixed64,
        "bool" => Type::Bool,
        "string" => Type::String,
        "bytes" => Type::Bytes,
        _ => return None,
    })
}

/// What a field's type must look like in the descriptor: the kind and, for
/// messages and enums, the fully qualified name (`.reg.XLRegMsg.Token`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExpectedType {
    kind: Type,
    type_name: Option<String>,
}

impl std::fmt::Display for ExpectedType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.kind, &self.type_name) {
            (Type::Enum, Some(name)) => write!(f, "enum {name}"),
            (Type::Message, Some(name)) => write!(f, "message {name}"),
            (kind, None) => write!(f, "{}", kind.as_str_name()),
            (kind, Some(name)) => write!(f, "{} {name}", kind.as_str_name()),
        }
    }
}

/// Resolves a seed type the way protoc does for a simple name: innermost
/// enclosing scope first.
fn resolve_seed_type(schema: &SeedSchema, scope: &str, ty: &str) -> Result<ExpectedType, String> {
    if let Some(kind) = scalar_type(ty) {
        return Ok(ExpectedType {
            kind,
            type_name: None,
        });
    }
    let package = schema.package.as_deref().unwrap_or_default();
    let mut outer = Some(scope);
    while let Some(current) = outer {
        let candidate = if current.is_empty() {
            ty.to_owned()
        } else {
            format!("{current}.{ty}")
        };
        let full = format!(".{package}.{candidate}");
        if schema.enums.contains_key(&candidate) {
            return Ok(ExpectedType {
                kind: Type::Enum,
                type_name: Some(full),
            });
        }
        if schema.messages.contains_key(&candidate) {
            return Ok(ExpectedType {
                kind: Type::Message,
                type_name: Some(full),
            });
        }
        outer = match current.rsplit_once('.') {
            Some((parent, _)) => Some(parent),
            None if current.is_empty() => None,
            None => Some(""),
        };
    }
    Err(format!(
        "type {ty} used in {scope} is not declared in the seed"
    ))
}

/// Every message and enum of a file, by dotted path inside the package.
fn collect_descriptor_types(
    file: &FileDescriptorProto,
) -> (
    BTreeMap<String, &DescriptorProto>,
    BTreeMap<String, &EnumDescriptorProto>,
) {
    fn walk<'a>(
        prefix: &str,
        message: &'a DescriptorProto,
        messages: &mut BTreeMap<String, &'a DescriptorProto>,
        enums: &mut BTreeMap<String, &'a EnumDescriptorProto>,
    ) {
        let path = if prefix.is_empty() {
            message.name().to_owned()
        } else {
            format!("{prefix}.{}", message.name())
        };
        for e in &message.enum_type {
            enums.insert(format!("{path}.{}", e.name()), e);
        }
        for nested in &message.nested_type {
            walk(&path, nested, messages, enums);
        }
        messages.insert(path, message);
    }
    let mut messages = BTreeMap::new();
    let mut enums = BTreeMap::new();
    for e in &file.enum_type {
        enums.insert(e.name().to_owned(), e);
    }
    for m in &file.message_type {
        walk("", m, &mut messages, &mut enums);
    }
    (messages, enums)
}

fn label_name(label: Option<Label>) -> &'static str {
    match label {
        Some(Label::Optional) => "optional",
        Some(Label::Repeated) => "repeated",
        Some(Label::Required) => "required",
        None => "no label",
    }
}

/// Compares the seed with the file, returning one line per difference.
fn compare(schema: &SeedSchema, file: &FileDescriptorProto) -> Vec<String> {
    let mut problems = Vec::new();
    let seed_package = schema.package.as_deref().unwrap_or("<none>");
    if file.package() != seed_package {
        problems.push(format!(
            "package: the seed says {seed_package:?}, the descriptor {:?}",
            file.package()
        ));
    }
    let (messages, enums) = collect_descriptor_types(file);

    for (path, values) in &schema.enums {
        let Some(descriptor) = enums.get(path) else {
            problems.push(format!(
                "enum {path}: in the seed, missing from the descriptor"
            ));
            continue;
        };
        for value in values {
            match descriptor.value.iter().find(|v| v.name() == value.name) {
                None => problems.push(format!(
                    "enum value {path}.{} (seed line {}): missing from the descriptor",
                    value.name, value.line
                )),
                Some(v) if v.number() != value.number => problems.push(format!(
                    "enum value {path}.{} (seed line {}): number {} in the seed, {} in the descriptor",
                    value.name,
                    value.line,
                    value.number,
                    v.number()
                )),
                Some(_) => {}
            }
        }
        for v in &descriptor.value {
            if !values.iter().any(|s| s.name == v.name()) {
                problems.push(format!(
                    "enum value {path}.{} = {}: in the descriptor, not in the seed",
                    v.name(),
                    v.number()
                ));
            }
        }
    }
    for path in enums.keys() {
        if !schema.enums.contains_key(path) {
            problems.push(format!("enum {path}: in the descriptor, not in the seed"));
        }
    }

    for (path, fields) in &schema.messages {
        let Some(descriptor) = messages.get(path) else {
            problems.push(format!(
                "message {path}: in the seed, missing from the descriptor"
            ));
            continue;
        };
        for field in fields {
            let what = format!("field {path}.{} (seed line {})", field.name, field.line);
            let Some(d) = descriptor.field.iter().find(|d| d.name() == field.name) else {
                problems.push(format!("{what}: missing from the descriptor"));
                continue;
            };
            if d.number() != field.number {
                problems.push(format!(
                    "{what}: number {} in the seed, {} in the descriptor",
                    field.number,
                    d.number()
                ));
            }
            let want_label = match field.label {
                SeedLabel::Optional => Label::Optional,
                SeedLabel::Repeated => Label::Repeated,
                SeedLabel::Required => Label::Required,
            };
            let got_label = Label::try_from(d.label.unwrap_or_default()).ok();
            if got_label != Some(want_label) || d.proto3_optional.unwrap_or(false) {
                problems.push(format!(
                    "{what}: {} in the seed, {} in the descriptor{}",
                    label_name(Some(want_label)),
                    label_name(got_label),
                    if d.proto3_optional.unwrap_or(false) {
                        " (proto3 optional)"
                    } else {
                        ""
                    }
                ));
            }
            match resolve_seed_type(schema, path, &field.ty) {
                Err(e) => problems.push(format!("{what}: {e}")),
                Ok(want) => {
                    let got = ExpectedType {
                        kind: Type::try_from(d.r#type.unwrap_or_default()).unwrap_or(Type::Group),
                        type_name: d.type_name.clone(),
                    };
                    if got != want {
                        problems.push(format!(
                            "{what}: type {want} in the seed ({}), {got} in the descriptor",
                            field.ty
                        ));
                    }
                }
            }
            if d.oneof_index.is_some() {
                problems.push(format!("{what}: inside a oneof in the descriptor"));
            }
            if d.default_value.is_some() {
                problems.push(format!(
                    "{what}: the descriptor adds a default ({:?}) the seed does not have",
                    d.default_value()
                ));
            }
        }
        for d in &descriptor.field {
            if !fields.iter().any(|f| f.name == d.name()) {
                problems.push(format!(
                    "field {path}.{} = {}: in the descriptor, not in the seed",
                    d.name(),
                    d.number()
                ));
            }
        }
    }
    for path in messages.keys() {
        if !schema.messages.contains_key(path) {
            problems.push(format!(
                "message {path}: in the descriptor, not in the seed"
            ));
        }
    }
    problems
}

// ---- Tests -----------------------------------------------------------------

fn seed() -> SeedSchema {
    parse_seed(SEED).unwrap_or_else(|e| panic!("cannot parse the xlReg seed: {e}"))
}

fn reg_file() -> FileDescriptorProto {
    let set = FileDescriptorSet::decode(catalogue_proto::file_descriptor_set_bytes())
        .expect("the crate's descriptor set decodes");
    let mut files = set.file.into_iter().filter(|f| f.package() == "reg");
    let file = files.next().expect("a file with package `reg` is compiled");
    assert!(files.next().is_none(), "only one file has package `reg`");
    file
}

fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "xlreg.proto differs from the xlReg seed:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn parser_finds_everything_the_seed_declares() {
    let schema = seed();
    assert_eq!(schema.package.as_deref(), Some("reg"));
    let messages: Vec<&str> = schema.messages.keys().map(String::as_str).collect();
    assert_eq!(messages, ["XLRegMsg", "XLRegMsg.Token"]);
    let enums: Vec<&str> = schema.enums.keys().map(String::as_str).collect();
    assert_eq!(enums, ["XLRegMsg.Tag"]);
    assert_eq!(schema.enums["XLRegMsg.Tag"].len(), SEED_TAG_VALUES);
    assert_eq!(schema.messages["XLRegMsg.Token"].len(), SEED_TOKEN_FIELDS);
    assert_eq!(schema.messages["XLRegMsg"].len(), SEED_XLREGMSG_FIELDS);

    // A few spot checks against values read off the seed by hand.
    let tag = &schema.enums["XLRegMsg.Tag"];
    assert_eq!((tag[0].name.as_str(), tag[0].number), ("RegCredRequest", 1));
    assert_eq!((tag[12].name.as_str(), tag[12].number), ("Error", 13));
    let outer = &schema.messages["XLRegMsg"];
    let tokens = outer
        .iter()
        .find(|f| f.name == "Tokens")
        .expect("the seed has XLRegMsg.Tokens");
    assert_eq!(
        (tokens.label, tokens.ty.as_str(), tokens.number),
        (SeedLabel::Repeated, "Token", 21)
    );
    let my_ends = schema.messages["XLRegMsg.Token"]
        .iter()
        .find(|f| f.name == "MyEnds")
        .expect("the seed has Token.MyEnds");
    assert_eq!(
        (my_ends.label, my_ends.ty.as_str(), my_ends.number),
        (SeedLabel::Repeated, "string", 6)
    );
}

#[test]
fn compiled_file_is_proto2_in_package_reg() {
    let file = reg_file();
    assert_eq!(file.package(), "reg");
    // protoc leaves `syntax` empty for proto2; either spelling means proto2.
    let syntax = file.syntax.as_deref().unwrap_or("proto2");
    assert!(
        syntax.is_empty() || syntax == "proto2",
        "xlreg.proto must be proto2, the descriptor says {syntax:?}"
    );
    let top: Vec<&str> = file.message_type.iter().map(|m| m.name()).collect();
    assert_eq!(top, ["XLRegMsg"], "the only top-level message is XLRegMsg");
    let msg = &file.message_type[0];
    let nested_enums: Vec<&str> = msg.enum_type.iter().map(|e| e.name()).collect();
    assert_eq!(nested_enums, ["Tag"], "XLRegMsg has the nested enum Tag");
    let nested_messages: Vec<&str> = msg.nested_type.iter().map(|m| m.name()).collect();
    assert_eq!(
        nested_messages,
        ["Token"],
        "XLRegMsg has the nested message Token"
    );
    assert!(
        file.enum_type.is_empty(),
        "no top-level enum in xlreg.proto"
    );
}

#[test]
fn compiled_schema_matches_the_seed_in_both_directions() {
    assert_no_problems(&compare(&seed(), &reg_file()));
}

// The checks below make sure the comparison itself catches differences, by
// feeding it seeds changed on purpose.

fn problems_for_edited_seed(from: &str, to: &str) -> Vec<String> {
    assert!(
        SEED.contains(from),
        "test edit {from:?} not found in the seed"
    );
    let edited = SEED.replacen(from, to, 1);
    let schema = parse_seed(&edited).expect("the edited seed parses");
    compare(&schema, &reg_file())
}

fn assert_reported(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem mentioning {needle:?}, got {problems:#?}"
    );
}

#[test]
fn a_renumbered_field_is_reported_by_name() {
    let problems = problems_for_edited_seed("ClusterSize     = 15", "ClusterSize     = 18");
    assert_reported(&problems, "field XLRegMsg.ClusterSize");
    assert_reported(&problems, "number 18 in the seed, 15 in the descriptor");
}

#[test]
fn a_changed_label_is_reported_by_name() {
    let problems = problems_for_edited_seed("repeated string MyEnds", "optional string MyEnds");
    assert_reported(
        &problems,
        "field XLRegMsg.Token.MyEnds (seed line 46): optional in the seed, repeated in the descriptor",
    );
}

#[test]
fn a_changed_type_is_reported_by_name() {
    let problems =
        problems_for_edited_seed("optional Token  ClientSpecs", "optional bytes  ClientSpecs");
    assert_reported(&problems, "field XLRegMsg.ClientSpecs");
    assert_reported(&problems, "type TYPE_BYTES in the seed");
    assert_reported(&problems, "message .reg.XLRegMsg.Token in the descriptor");
}

#[test]
fn a_field_missing_from_either_side_is_reported() {
    let problems = problems_for_edited_seed("    optional string ErrDesc         = 23;\n", "");
    assert_reported(
        &problems,
        "field XLRegMsg.ErrDesc = 23: in the descriptor, not in the seed",
    );
    let problems = problems_for_edited_seed(
        "    optional string ErrDesc         = 23;\n",
        "    optional string ErrDesc         = 23;\n    optional bytes Extra = 24;\n",
    );
    assert_reported(&problems, "field XLRegMsg.Extra");
    assert_reported(&problems, "missing from the descriptor");
}

#[test]
fn a_changed_enum_value_is_reported_by_name() {
    let problems = problems_for_edited_seed("ClientOK        = 4;", "ClientOk        = 4;");
    assert_reported(&problems, "enum value XLRegMsg.Tag.ClientOk");
    assert_reported(
        &problems,
        "enum value XLRegMsg.Tag.ClientOK = 4: in the descriptor",
    );
    let problems = problems_for_edited_seed("Bye             = 11;", "Bye             = 14;");
    assert_reported(&problems, "number 14 in the seed, 11 in the descriptor");
}

#[test]
fn garbage_inside_a_block_is_a_parse_error() {
    let edited = SEED.replacen(
        "optional bytes  SigKey      = 5;",
        "optional bytes SigKey 5",
        1,
    );
    let err = parse_seed(&edited).expect_err("an unparsable field is an error");
    assert!(err.contains("Token"), "error names the message: {err}");
}

/// The extension message (`xlreg_ext.proto`, docs/XLREG.md §14) rides in the
/// same plaintext as an `XLRegMsg`, so none of its numbers may be one the
/// seed uses anywhere, and it must live outside package `reg`.
#[test]
fn the_extension_fields_use_no_number_of_the_seed() {
    let set = FileDescriptorSet::decode(catalogue_proto::file_descriptor_set_bytes())
        .expect("the crate's descriptor set decodes");
    let ext = set
        .file
        .iter()
        .find(|f| f.package() == "regext")
        .expect("xlreg_ext.proto is compiled");
    let schema = seed();
    let seed_numbers: Vec<i32> = schema
        .messages
        .values()
        .flatten()
        .map(|f| f.number)
        .collect();
    let fields: Vec<_> = ext.message_type.iter().flat_map(|m| &m.field).collect();
    assert!(!fields.is_empty(), "XLRegExt has fields");
    for field in fields {
        assert!(
            field.number() >= 100 && !seed_numbers.contains(&field.number()),
            "extension field {} = {} collides with the seed's numbers",
            field.name(),
            field.number()
        );
    }
}
