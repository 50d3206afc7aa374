//! The kernel ABI as the kernel files declare it: the parameter block of every entry point, read from the
//! text of kernels/*.ptx (the declared `.param .align 4 .b8 p[SIZE]`, every `ld.param` from it and the
//! `Params (...)` list in the header comment) and of wgsl/*.wgsl (the uniform struct each entry point reads,
//! laid out by WGSL's rules), and the checks that compare them with each other and with the Rust parameter
//! structs (kernels/README.md, "Calling convention").
//!
//! This file is shared: build.rs includes it with `#[path]` to parse every kernel file, fail the build on a
//! kernel-side mismatch and write the layouts to `$OUT_DIR/kernel_abi.rs`; the crate includes it as
//! `kernels::abi`, where the generated layouts are compared with each Rust struct's field list
//! (`backend::KernelParams`), and where the parsers are tested on deliberately wrong snippets.
//! It uses only `std`.
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The type of a 4-byte parameter word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    U32,
    F32,
}

impl Scalar {
    fn parse(s: &str) -> Option<Scalar> {
        match s {
            "u32" => Some(Scalar::U32),
            "f32" => Some(Scalar::F32),
            _ => None,
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scalar::U32 => "u32",
            Scalar::F32 => "f32",
        })
    }
}

/// One field of a parameter block: `count` consecutive 4-byte words of type `ty` from byte `offset`
/// (count > 1 for an array: Rust `[u32; 8]`, WGSL `array<vec4<u32>, 2>`, PTX doc `shape[8]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Cow<'static, str>,
    pub ty: Scalar,
    pub count: u32,
    pub offset: u32,
}

impl Field {
    pub fn end(&self) -> u32 {
        self.offset + 4 * self.count
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        if self.count != 1 {
            write!(f, "[{}]", self.count)?;
        }
        write!(f, " {} @{}", self.ty, self.offset)
    }
}

/// A parameter block: its size in bytes and its fields in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub size: u32,
    pub fields: Cow<'static, [Field]>,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes {{ ", self.size)?;
        for (i, x) in self.fields.iter().enumerate() {
            write!(f, "{}{x}", if i > 0 { ", " } else { "" })?;
        }
        write!(f, " }}")
    }
}

/// One `ld.param` from the parameter block: `[p+offset]` (direct) or `[%reg+offset]` (indirect: a register
/// holding an address inside the block, as binary.ptx indexes its arrays), `ty` the instruction's type suffix.
/// `label` is what the line says it reads: the first word of its comment (`// trans_a`, `// shape[d]`), else
/// the destination register's name (`%cin`); when that is the name of a field, it must be the field read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Load {
    pub offset: u32,
    pub ty: Cow<'static, str>,
    pub indirect: bool,
    pub label: Cow<'static, str>,
    /// 1-based line in the .ptx file.
    pub line: u32,
}

/// A PTX entry point: the declared size of its parameter block, its loads from it and the header's documented
/// field list that applies to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtxEntry {
    pub entry: Cow<'static, str>,
    pub param_bytes: u32,
    pub loads: Cow<'static, [Load]>,
    pub doc: Layout,
}

/// A WGSL entry point and the layout of the uniform struct (at @group(0) @binding(0)) it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgslEntry {
    pub entry: Cow<'static, str>,
    /// The struct's WGSL name.
    pub ty: Cow<'static, str>,
    pub layout: Layout,
}

/// Both kernel files of one op family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyAbi {
    pub family: Cow<'static, str>,
    pub ptx: Cow<'static, [PtxEntry]>,
    pub wgsl: Cow<'static, [WgslEntry]>,
}

impl FamilyAbi {
    pub fn ptx_entry(&self, entry: &str) -> Option<&PtxEntry> {
        self.ptx.iter().find(|e| e.entry == entry)
    }
    pub fn wgsl_entry(&self, entry: &str) -> Option<&WgslEntry> {
        self.wgsl.iter().find(|e| e.entry == entry)
    }
}

/// Field names WGSL cannot use (keywords), and the name the WGSL struct gives that field instead.
pub const WGSL_RENAMES: &[(&str, &str)] = &[("pass", "npass")];

fn same_name(a: &str, b: &str) -> bool {
    a == b || WGSL_RENAMES.iter().any(|&(x, y)| (a, b) == (x, y) || (a, b) == (y, x))
}

fn owned<T: Clone>(v: Vec<T>) -> Cow<'static, [T]> {
    Cow::Owned(v)
}

// ---------------------------------------------------------------------------------------------------------
// Checks

/// The differences between two layouts of the same block, field by field (name, type, count and offset) and
/// in size; empty when they agree. `a` and `b` name the two sides in the messages.
pub fn compare_layouts(a_name: &str, a: &Layout, b_name: &str, b: &Layout) -> Vec<String> {
    let mut errs = Vec::new();
    if a.size != b.size {
        errs.push(format!("size: {a_name} {} bytes, {b_name} {} bytes", a.size, b.size));
    }
    for i in 0..a.fields.len().max(b.fields.len()) {
        match (a.fields.get(i), b.fields.get(i)) {
            (Some(x), Some(y)) => {
                if !same_name(&x.name, &y.name) || x.ty != y.ty || x.count != y.count || x.offset != y.offset {
                    errs.push(format!("field {i}: {a_name} `{x}`, {b_name} `{y}`"));
                }
            }
            (Some(x), None) => errs.push(format!("field {i}: {a_name} `{x}`, missing in {b_name}")),
            (None, Some(y)) => errs.push(format!("field {i}: missing in {a_name}, {b_name} `{y}`")),
            (None, None) => {}
        }
    }
    errs
}

/// A layout must tile its block: fields back to back from offset 0 (4-byte words, no gaps, no overlap) up to
/// its size, with distinct names.
pub fn check_packed(what: &str, l: &Layout) -> Vec<String> {
    let mut errs = Vec::new();
    let mut at = 0;
    let mut names = BTreeSet::new();
    for f in l.fields.iter() {
        if f.offset != at {
            errs.push(format!("{what}: `{f}` should be at offset {at} (fields are packed 4-byte words)"));
        }
        if f.count == 0 {
            errs.push(format!("{what}: `{f}` is empty"));
        }
        if !names.insert(f.name.as_ref()) {
            errs.push(format!("{what}: field `{}` appears twice", f.name));
        }
        at = f.end();
    }
    if at != l.size {
        errs.push(format!("{what}: the fields end at byte {at}, the block has {} bytes", l.size));
    }
    errs
}

/// The PTX instruction types that may read a field of type `ty`, and the bytes they read.
fn load_width(ty: &str) -> Option<(u32, Option<Scalar>)> {
    match ty {
        "u32" | "s32" => Some((4, Some(Scalar::U32))),
        "f32" => Some((4, Some(Scalar::F32))),
        "b32" => Some((4, None)),
        "u8" | "s8" | "b8" => Some((1, None)),
        "u16" | "s16" | "b16" | "f16" => Some((2, None)),
        "u64" | "s64" | "b64" | "f64" => Some((8, None)),
        _ => None,
    }
}

/// Every load of `e` must read inside one field of `layout` with the field's width and type (a 32-bit load of
/// a 4-byte word: `ld.param.u32`/`s32` a u32 field, `ld.param.f32` an f32 field, `b32` either), at a word
/// boundary; an indirect load (`[%reg+k]`) must start at an array field, which it indexes.
pub fn check_loads(what: &str, e: &PtxEntry, layout: &Layout) -> Vec<String> {
    let mut errs = Vec::new();
    for l in e.loads.iter() {
        let at = format!(
            "{what} line {}: ld.param.{} [{}{}]",
            l.line,
            l.ty,
            if l.indirect { "%reg+" } else { "p+" },
            l.offset
        );
        let Some((width, want)) = load_width(&l.ty) else {
            errs.push(format!("{at}: unknown type"));
            continue;
        };
        let Some(f) = layout.fields.iter().find(|f| f.offset <= l.offset && l.offset < f.end()) else {
            errs.push(format!("{at}: no field there (the block is {layout})"));
            continue;
        };
        if width != 4 || l.offset % 4 != 0 {
            errs.push(format!("{at}: reads {width} bytes of the 4-byte field `{f}`"));
        } else if want.is_some_and(|t| t != f.ty) {
            errs.push(format!("{at}: reads the {} field `{f}` as {}", f.ty, l.ty));
        } else if l.indirect && (f.count < 2 || l.offset != f.offset) {
            errs.push(format!("{at}: an indexed load must start at an array field, not inside `{f}`"));
        } else if !same_name(&l.label, &f.name) && layout.fields.iter().any(|g| same_name(&l.label, &g.name)) {
            errs.push(format!("{at}: reads `{f}`, but the line says `{}`", l.label));
        }
    }
    errs
}

/// The kernel-side checks of one family, run by build.rs: both files have the same entry points; each PTX entry
/// documents a packed list of its declared size whose fields its loads respect; each WGSL entry's uniform struct
/// has exactly the documented layout.
pub fn check_family(f: &FamilyAbi) -> Vec<String> {
    let mut errs = Vec::new();
    let ptx: BTreeSet<&str> = f.ptx.iter().map(|e| e.entry.as_ref()).collect();
    let wgsl: BTreeSet<&str> = f.wgsl.iter().map(|e| e.entry.as_ref()).collect();
    for e in ptx.symmetric_difference(&wgsl) {
        let (has, lacks) = if ptx.contains(e) { ("ptx", "wgsl") } else { ("wgsl", "ptx") };
        errs.push(format!("{}: entry `{e}` is in the .{has} file but not the .{lacks} file", f.family));
    }
    for e in f.ptx.iter() {
        let what = format!("{}.ptx {}", f.family, e.entry);
        if e.param_bytes != e.doc.size {
            errs.push(format!("{what}: declares p[{}] but its header documents {} bytes", e.param_bytes, e.doc.size));
        }
        errs.extend(check_packed(&format!("{what} (header)"), &e.doc));
        errs.extend(check_loads(&what, e, &e.doc));
    }
    for w in f.wgsl.iter() {
        if let Some(p) = f.ptx_entry(&w.entry) {
            let what = format!("{} {}", f.family, w.entry);
            errs.extend(
                compare_layouts("PTX header", &p.doc, &format!("WGSL struct {}", w.ty), &w.layout)
                    .into_iter()
                    .map(|e| format!("{what}: {e}")),
            );
        }
    }
    errs
}

/// Compares a Rust parameter struct with every kernel that takes it, as the crate's ABI test does: the same size
/// and fields (name, type, count, offset) as the PTX header and the WGSL struct, and every `ld.param` of the PTX
/// entry inside the Rust struct with the right width and type.
pub fn check_rust(rust_name: &str, rust: &Layout, family: &FamilyAbi, entry: &str) -> Vec<String> {
    let what = format!("{rust_name} for {}::{entry}", family.family);
    let mut errs: Vec<String> = check_packed(rust_name, rust);
    match family.ptx_entry(entry) {
        Some(p) => {
            errs.extend(
                compare_layouts(rust_name, rust, "PTX header", &p.doc).into_iter().map(|e| format!("{what}: {e}")),
            );
            if p.param_bytes != rust.size {
                errs.push(format!(
                    "{what}: the PTX declares p[{}], the Rust struct has {} bytes",
                    p.param_bytes, rust.size
                ));
            }
            errs.extend(check_loads(&what, p, rust));
        }
        None => errs.push(format!("{what}: no such PTX entry")),
    }
    match family.wgsl_entry(entry) {
        Some(w) => errs.extend(
            compare_layouts(rust_name, rust, &format!("WGSL struct {}", w.ty), &w.layout)
                .into_iter()
                .map(|e| format!("{what}: {e}")),
        ),
        None => errs.push(format!("{what}: no such WGSL entry")),
    }
    errs
}

// ---------------------------------------------------------------------------------------------------------
// PTX

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '%'
}

fn strip_ptx_comment(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

/// The documented parameter lists of a PTX file's header comments:
/// `[entry(args), ]Params (SIZE bytes[, TYPE][; remark]): ITEM, ITEM, ... .` where ITEM is
/// `name[[COUNT]] [TYPE] @OFFSET` (the type may be left to the header's TYPE), parenthesised remarks may follow
/// any part of an item, and the list may continue over the next comment lines up to its closing period.
/// A list with an entry prefix applies to that entry only, one without to every entry of the file.
/// Returns (entry or None, layout, line).
pub fn parse_ptx_docs(src: &str) -> Result<Vec<(Option<String>, Layout, u32)>, String> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(c) = line.trim_start().strip_prefix("//") else { continue };
        let Some(at) = c.find("Params (") else { continue };
        let lineno = i as u32 + 1;
        let err = |m: String| format!("line {lineno}: {m}");
        let prefix = c[..at].trim();
        let entry = if prefix.is_empty() {
            None
        } else {
            let name = prefix.split('(').next().unwrap_or("").trim();
            if !prefix.ends_with("),") || name.is_empty() || !name.chars().all(is_ident_char) {
                return Err(err(format!("`{prefix}` before `Params (`: expected `entry(args), ` or nothing")));
            }
            Some(name.to_string())
        };
        // The list: this comment line from `Params (`, then the following comment lines, to the closing period.
        let mut text = c[at + "Params (".len()..].to_string();
        let mut next = i + 1;
        let close = loop {
            if let Some(p) = list_end(&text) {
                break p;
            }
            match lines.get(next).and_then(|l| l.trim_start().strip_prefix("//")) {
                Some(more) if !more.trim().is_empty() => {
                    text.push(' ');
                    text.push_str(more.trim());
                    next += 1;
                }
                _ => return Err(err("the `Params (` list has no closing period".into())),
            }
        };
        let text = &text[..close];
        let (head, items) = text.split_once("):").ok_or_else(|| err("expected `Params (SIZE bytes...): `".into()))?;
        let mut head = head.split(';').next().unwrap_or("").split(',').map(str::trim);
        let size = head
            .next()
            .and_then(|s| s.strip_suffix(" bytes"))
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| err(format!("expected `SIZE bytes` in `Params ({text}`")))?;
        let default_ty = match head.next() {
            None => None,
            Some(t) => Some(Scalar::parse(t).ok_or_else(|| err(format!("unknown type `{t}` in the Params header")))?),
        };
        let mut fields = Vec::new();
        for item in split_top(&strip_parens(items), ',') {
            let item = item.trim();
            let words: Vec<&str> = item.split_whitespace().collect();
            let (name, ty, off) = match words.as_slice() {
                [n, o] => (*n, None, *o),
                [n, t, o] => (*n, Some(*t), *o),
                _ => return Err(err(format!("item `{item}`: expected `name [type] @offset`"))),
            };
            let offset = off
                .strip_prefix('@')
                .and_then(|o| o.parse::<u32>().ok())
                .ok_or_else(|| err(format!("item `{item}`: expected `@offset`, found `{off}`")))?;
            let (name, count) = match name.split_once('[') {
                Some((n, k)) => {
                    let k = k.strip_suffix(']').and_then(|k| k.parse::<u32>().ok());
                    (n, k.ok_or_else(|| err(format!("item `{item}`: expected `name[COUNT]`")))?)
                }
                None => (name, 1),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(err(format!("item `{item}`: `{name}` is not a field name")));
            }
            let ty = match ty {
                Some(t) => Scalar::parse(t).ok_or_else(|| err(format!("item `{item}`: unknown type `{t}`")))?,
                None => default_ty.ok_or_else(|| err(format!("item `{item}`: no type, and the header gives none")))?,
            };
            fields.push(Field { name: Cow::Owned(name.to_string()), ty, count, offset });
        }
        out.push((entry, Layout { size, fields: owned(fields) }, lineno));
    }
    Ok(out)
}

/// The byte index of the period that closes a Params list: the first `.` outside parentheses followed by
/// whitespace or the end of the text.
fn list_end(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0i32;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'.' if depth <= 0 && b.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()) => return Some(i),
            _ => {}
        }
    }
    None
}

/// `text` without its parenthesised remarks.
fn strip_parens(text: &str) -> String {
    let mut depth = 0;
    text.chars()
        .filter(|&c| {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    return false;
                }
                _ => {}
            }
            depth == 0
        })
        .collect()
}

/// Splits at `sep` outside `<>`, `()` and `[]`.
fn split_top(text: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out.retain(|s| !s.trim().is_empty());
    out
}

/// Every `.entry` of a PTX file: the declared parameter block (its first parameter must be
/// `.param .align 4 .b8 NAME[SIZE]`) and each `ld.param` in its body from the block, directly (`[NAME+k]`,
/// `[NAME]`) or through a register (`[%r+k]`); loads of the named pointer parameters are not part of the block.
/// Each entry takes the documented list of the header that names it, else the file's one unnamed list.
pub fn parse_ptx(src: &str) -> Result<Vec<PtxEntry>, String> {
    let docs = parse_ptx_docs(src)?;
    let general: Vec<_> = docs.iter().filter(|d| d.0.is_none()).collect();
    if general.len() > 1 {
        return Err(format!("lines {} and {}: two Params lists for the whole file", general[0].2, general[1].2));
    }
    let lines: Vec<&str> = src.lines().collect();
    let mut entries = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let code = strip_ptx_comment(lines[i]);
        let Some(at) = code.find(".entry ") else {
            i += 1;
            continue;
        };
        let start = i as u32 + 1;
        let err = |m: String| format!("line {start}: {m}");
        let rest = code[at + ".entry ".len()..].trim_start();
        let name: String = rest.chars().take_while(|&c| is_ident_char(c)).collect();
        if name.is_empty() {
            return Err(err("`.entry` without a name".into()));
        }
        // The parameter list, up to `)`, then the body from `{` to its matching `}`.
        let mut sig = String::new();
        let mut j = i;
        loop {
            let l = strip_ptx_comment(lines[j]);
            sig.push_str(if j == i { &l[at..] } else { l });
            sig.push('\n');
            if l.contains(')') {
                break;
            }
            j += 1;
            if j == lines.len() {
                return Err(err(format!("entry `{name}`: unterminated parameter list")));
            }
        }
        let params = sig.split_once('(').map(|(_, p)| p.split(')').next().unwrap_or("")).unwrap_or("");
        let first = params.split(',').next().unwrap_or("").split_whitespace().collect::<Vec<_>>();
        let (block, param_bytes) = match first.as_slice() {
            [".param", ".align", "4", ".b8", decl] => {
                let (n, size) = decl.split_once('[').ok_or_else(|| err(format!("entry `{name}`: `{decl}`")))?;
                let size = size.strip_suffix(']').and_then(|s| s.parse::<u32>().ok());
                (n.to_string(), size.ok_or_else(|| err(format!("entry `{name}`: bad block size in `{decl}`")))?)
            }
            _ => {
                return Err(err(format!(
                    "entry `{name}`: the first parameter must be `.param .align 4 .b8 p[SIZE]`, found `{}`",
                    first.join(" ")
                )))
            }
        };
        let mut depth = 0;
        let mut opened = false;
        let mut loads = Vec::new();
        let mut k = j;
        while k < lines.len() {
            let l = strip_ptx_comment(lines[k]);
            let from = if k == j { l.rfind(')').map_or(0, |p| p + 1) } else { 0 };
            for c in l[from..].chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            let mut s = &l[from..];
            while let Some(p) = s.find("ld.param.") {
                let after = &s[p + "ld.param.".len()..];
                let ty: String = after.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                let line = k as u32 + 1;
                let label = lines[k].split_once("//").map_or("", |(_, c)| c.trim_start());
                let label = match label.chars().next() {
                    Some(c) if c.is_ascii_alphabetic() || c == '_' => label,
                    _ => after.split_once('%').map_or("", |(_, r)| r),
                };
                let label: String = label.chars().take_while(|&c| c.is_ascii_alphanumeric() || c == '_').collect();
                let addr = after.split_once('[').and_then(|(_, a)| a.split_once(']')).map(|(a, _)| a.replace(' ', ""));
                let addr = addr.ok_or_else(|| format!("line {line}: ld.param without an [address]"))?;
                let (base, off) = match addr.split_once('+') {
                    Some((b, o)) => {
                        (b.to_string(), o.parse::<u32>().map_err(|_| format!("line {line}: offset in `[{addr}]`"))?)
                    }
                    None => (addr.clone(), 0),
                };
                if base == block || base.starts_with('%') {
                    loads.push(Load {
                        offset: off,
                        ty: Cow::Owned(ty),
                        indirect: base != block,
                        label: Cow::Owned(label),
                        line,
                    });
                } else if !params.contains(&format!(" {base}")) {
                    return Err(format!("line {line}: ld.param from `{base}`, not a parameter of `{name}`"));
                }
                s = &after[after.find(']').unwrap_or(0)..];
            }
            k += 1;
            if opened && depth == 0 {
                break;
            }
        }
        if !opened || depth != 0 {
            return Err(err(format!("entry `{name}`: no balanced body")));
        }
        let doc = docs
            .iter()
            .find(|d| d.0.as_deref() == Some(name.as_str()))
            .or(general.first().copied())
            .map(|d| d.1.clone())
            .ok_or_else(|| err(format!("entry `{name}`: no `Params (...)` list in the header documents it")))?;
        entries.push(PtxEntry { entry: Cow::Owned(name), param_bytes, loads: owned(loads), doc });
        i = k;
    }
    for (e, _, line) in &docs {
        if let Some(e) = e {
            if !entries.iter().any(|x| x.entry == e.as_str()) {
                return Err(format!("line {line}: Params list for `{e}`, which is not an entry of the file"));
            }
        }
    }
    Ok(entries)
}

// ---------------------------------------------------------------------------------------------------------
// WGSL

/// `src` with its `//` and `/* */` comments replaced by spaces (so byte offsets and lines stay).
fn strip_wgsl_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut block = 0;
    while i < b.len() {
        if block == 0 && b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            block += 1;
            out.extend_from_slice(b"  ");
            i += 2;
        } else if block > 0 && b[i..].starts_with(b"*/") {
            block -= 1;
            out.extend_from_slice(b"  ");
            i += 2;
        } else {
            out.push(if block > 0 && b[i] != b'\n' { b' ' } else { b[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_default()
}

fn line_of(src: &str, at: usize) -> usize {
    src[..at].matches('\n').count() + 1
}

/// (size, align, Field type and word count) of a WGSL type in a uniform struct, by WGSL's layout rules;
/// only the 4-byte scalars, their vectors and dense arrays of those are allowed.
fn wgsl_type(ty: &str) -> Result<(u32, u32, Scalar, u32), String> {
    let ty = ty.replace(' ', "");
    if let Some(s) = Scalar::parse(&ty) {
        return Ok((4, 4, s, 1));
    }
    for (n, size, align) in [(2, 8, 8), (3, 12, 16), (4, 16, 16)] {
        if let Some(inner) = ty.strip_prefix(&format!("vec{n}<")).and_then(|t| t.strip_suffix('>')) {
            let s = Scalar::parse(inner).ok_or_else(|| format!("`{ty}`: only u32 and f32 vectors"))?;
            return Ok((size, align, s, n));
        }
    }
    if let Some(inner) = ty.strip_prefix("array<").and_then(|t| t.strip_suffix('>')) {
        let (elem, k) = inner.rsplit_once(',').ok_or_else(|| format!("`{ty}`: a sized array is expected"))?;
        let k: u32 = k.trim_end_matches('u').parse().map_err(|_| format!("`{ty}`: the length must be a literal"))?;
        let (size, align, s, words) = wgsl_type(elem)?;
        let stride = size.div_ceil(align) * align;
        if stride != size {
            return Err(format!("`{ty}`: elements of {size} bytes at a stride of {stride} are not packed words"));
        }
        return Ok((k * stride, align, s, k * words));
    }
    Err(format!("`{ty}`: not a parameter type (u32, f32, vecN of them, arrays of those)"))
}

/// The layout of `struct NAME { ... }` in a comment-free WGSL source.
fn wgsl_struct(src: &str, name: &str) -> Result<Layout, String> {
    let mut search = 0;
    let at = loop {
        let p = src[search..].find("struct ").map(|p| p + search).ok_or_else(|| format!("no `struct {name}`"))?;
        let rest = src[p + 7..].trim_start();
        let id: String = rest.chars().take_while(|&c| c.is_ascii_alphanumeric() || c == '_').collect();
        let word_start = p == 0 || !src[..p].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        if id == name && word_start {
            break p;
        }
        search = p + 7;
    };
    let line = line_of(src, at);
    let open =
        src[at..].find('{').map(|p| p + at).ok_or_else(|| format!("line {line}: `struct {name}` has no body"))?;
    let close =
        src[open..].find('}').map(|p| p + open).ok_or_else(|| format!("line {line}: unclosed `struct {name}`"))?;
    let (mut offset, mut align_max) = (0u32, 4u32);
    let mut fields = Vec::new();
    for m in split_top(&src[open + 1..close], ',') {
        let m = m.trim();
        if m.starts_with('@') {
            return Err(format!("line {line}: `{m}`: member attributes are not used in parameter structs"));
        }
        let (n, t) = m.split_once(':').ok_or_else(|| format!("line {line}: member `{m}`: expected `name: type`"))?;
        let (size, align, ty, count) =
            wgsl_type(t.trim()).map_err(|e| format!("line {line}: member `{}`: {e}", n.trim()))?;
        offset = offset.div_ceil(align) * align;
        fields.push(Field { name: Cow::Owned(n.trim().to_string()), ty, count, offset });
        offset += size;
        align_max = align_max.max(align);
    }
    Ok(Layout { size: offset.div_ceil(align_max) * align_max, fields: owned(fields) })
}

fn identifiers(body: &str) -> Vec<(&str, bool, bool)> {
    // (identifier, preceded by '.', followed by '(')
    let b = body.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let before = body[..s].trim_end().ends_with('.');
            let after = body[i..].trim_start().starts_with('(');
            out.push((&body[s..i], before, after));
        } else {
            i += 1;
        }
    }
    out
}

/// Every `@compute` entry point of a WGSL module with the layout of the uniform struct it reads (directly or
/// through the functions it calls). The struct must be bound at `@group(0) @binding(0)`; an entry that reads no
/// uniform, or two, is an error.
pub fn parse_wgsl(src: &str) -> Result<Vec<WgslEntry>, String> {
    let src = strip_wgsl_comments(src);
    // Uniform variables: name -> (struct type, line).
    let mut uniforms: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut from = 0;
    while let Some(p) = src[from..].find("var<uniform>").map(|p| p + from) {
        let line = line_of(&src, p);
        let decl = src[p + "var<uniform>".len()..].split(';').next().unwrap_or("");
        let (n, t) = decl.split_once(':').ok_or_else(|| format!("line {line}: expected `var<uniform> name: Type;`"))?;
        let attrs = src[..p].rsplit([';', '}']).next().unwrap_or("").split_whitespace().collect::<String>();
        if attrs != "@group(0)@binding(0)" {
            return Err(format!("line {line}: a uniform must be bound at @group(0) @binding(0), found `{attrs}`"));
        }
        uniforms.insert(n.trim().to_string(), (t.trim().to_string(), line));
        from = p + 1;
    }
    // Functions at the top level: name -> (is an entry, body, line).
    let mut fns: BTreeMap<String, (bool, String, usize)> = BTreeMap::new();
    let mut order = Vec::new();
    let b = src.as_bytes();
    let (mut depth, mut item_start) = (0i32, 0usize);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    item_start = i + 1;
                }
            }
            b';' if depth == 0 => item_start = i + 1,
            b'f' if depth == 0
                && src[i..].starts_with("fn ")
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let line = line_of(&src, i);
                let name: String =
                    src[i + 3..].trim_start().chars().take_while(|&c| c.is_ascii_alphanumeric() || c == '_').collect();
                let is_entry = src[item_start..i].contains("@compute");
                let open =
                    src[i..].find('{').map(|p| p + i).ok_or_else(|| format!("line {line}: `fn {name}` has no body"))?;
                let mut d = 0;
                let mut end = open;
                for (k, c) in src[open..].char_indices() {
                    match c {
                        '{' => d += 1,
                        '}' => {
                            d -= 1;
                            if d == 0 {
                                end = open + k;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                if d != 0 {
                    return Err(format!("line {line}: `fn {name}`: unbalanced braces"));
                }
                order.push(name.clone());
                fns.insert(name, (is_entry, src[open..=end].to_string(), line));
                i = end + 1;
                item_start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let mut out = Vec::new();
    for name in &order {
        let (is_entry, _, line) = &fns[name];
        if !*is_entry {
            continue;
        }
        // The uniforms read by the entry and everything it calls.
        let mut used = BTreeSet::new();
        let (mut todo, mut seen) = (vec![name.clone()], BTreeSet::new());
        while let Some(f) = todo.pop() {
            if !seen.insert(f.clone()) {
                continue;
            }
            for (id, member, call) in identifiers(&fns[&f].1) {
                if member {
                    continue;
                }
                if call && fns.contains_key(id) {
                    todo.push(id.to_string());
                } else if uniforms.contains_key(id) {
                    used.insert(id.to_string());
                }
            }
        }
        let var = match used.len() {
            1 => used.into_iter().next().unwrap(),
            0 => return Err(format!("line {line}: entry `{name}` reads no uniform parameter struct")),
            _ => return Err(format!("line {line}: entry `{name}` reads several uniforms: {used:?}")),
        };
        let ty = uniforms[&var].0.clone();
        let layout = wgsl_struct(&src, &ty).map_err(|e| format!("entry `{name}`: {e}"))?;
        out.push(WgslEntry { entry: Cow::Owned(name.clone()), ty: Cow::Owned(ty), layout });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PTX: &str = "\
// Params (16 bytes, u32): n @0, op @4, alpha f32 @8 (a remark, with a comma),
//   beta f32 @12.
.visible .entry k_fwd(
    .param .align 4 .b8 p[16],
    .param .u64 x_ptr
)
{
    ld.param.u32    %r1, [p+0];     // n
    ld.param.u32    %r2, [p+4];
    ld.param.f32    %f1, [p+8];
    ld.param.f32    %f2, [p+12];
    ld.param.u64    %rd1, [x_ptr];
    ret;
}
";

    const WGSL: &str = "\
struct Params { n: u32, op: u32, alpha: f32, beta: f32 }  // the comment
@group(0) @binding(0) var<uniform> p: Params;
fn get_n() -> u32 { return p.n; }
@compute @workgroup_size(256)
fn k_fwd(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x >= get_n()) { return; }
}
";

    fn family(ptx: &str, wgsl: &str) -> FamilyAbi {
        FamilyAbi { family: "k".into(), ptx: owned(parse_ptx(ptx).unwrap()), wgsl: owned(parse_wgsl(wgsl).unwrap()) }
    }

    fn rust(fields: &[(&'static str, Scalar, u32)]) -> Layout {
        let mut at = 0;
        let fields: Vec<Field> = fields
            .iter()
            .map(|&(n, ty, count)| {
                let f = Field { name: n.into(), ty, count, offset: at };
                at += 4 * count;
                f
            })
            .collect();
        Layout { size: at, fields: owned(fields) }
    }

    fn good_rust() -> Layout {
        rust(&[("n", Scalar::U32, 1), ("op", Scalar::U32, 1), ("alpha", Scalar::F32, 1), ("beta", Scalar::F32, 1)])
    }

    #[test]
    fn consistent_snippets_pass() {
        let f = family(PTX, WGSL);
        assert_eq!(f.ptx[0].param_bytes, 16);
        assert_eq!(f.ptx[0].loads.len(), 4, "the pointer load is not part of the block");
        assert_eq!(f.ptx[0].doc, f.wgsl[0].layout);
        assert_eq!(check_family(&f), Vec::<String>::new());
        assert_eq!(check_rust("Params", &good_rust(), &f, "k_fwd"), Vec::<String>::new());
    }

    #[test]
    fn a_short_rust_struct_is_caught() {
        // The bug the issue describes: a Rust struct shorter than the kernel's block (zero-padded at launch).
        let f = family(PTX, WGSL);
        let short = rust(&[("n", Scalar::U32, 1), ("op", Scalar::U32, 1), ("alpha", Scalar::F32, 1)]);
        let errs = check_rust("Params", &short, &f, "k_fwd");
        assert!(errs.iter().any(|e| e.contains("size: Params 12 bytes, PTX header 16 bytes")), "{errs:#?}");
        assert!(errs.iter().any(|e| e.contains("p[16]")), "{errs:#?}");
        assert!(errs.iter().any(|e| e.contains("[p+12]") && e.contains("no field there")), "{errs:#?}");
    }

    #[test]
    fn swapped_or_retyped_rust_fields_are_caught() {
        let f = family(PTX, WGSL);
        let swapped =
            rust(&[("op", Scalar::U32, 1), ("n", Scalar::U32, 1), ("alpha", Scalar::F32, 1), ("beta", Scalar::F32, 1)]);
        assert!(check_rust("Params", &swapped, &f, "k_fwd").iter().any(|e| e.contains("field 0")));
        let retyped =
            rust(&[("n", Scalar::U32, 1), ("op", Scalar::U32, 1), ("alpha", Scalar::U32, 1), ("beta", Scalar::F32, 1)]);
        let errs = check_rust("Params", &retyped, &f, "k_fwd");
        assert!(errs.iter().any(|e| e.contains("reads the u32 field `alpha u32 @8` as f32")), "{errs:#?}");
    }

    #[test]
    fn a_ptx_load_past_its_documented_field_is_caught() {
        // A kernel reading beta at the wrong offset, or alpha with an integer load.
        let f = family(&PTX.replace("[p+12]", "[p+16]"), WGSL);
        assert!(check_family(&f).iter().any(|e| e.contains("[p+16]: no field there")), "{:#?}", check_family(&f));
        let f = family(&PTX.replace("ld.param.f32    %f1, [p+8]", "ld.param.u32    %f1, [p+8]"), WGSL);
        assert!(check_family(&f).iter().any(|e| e.contains("reads the f32 field `alpha f32 @8` as u32")));
        let f = family(&PTX.replace("ld.param.u32    %r2, [p+4]", "ld.param.u16    %r2, [p+6]"), WGSL);
        assert!(check_family(&f).iter().any(|e| e.contains("reads 2 bytes")));
    }

    #[test]
    fn a_load_whose_line_names_another_field_is_caught() {
        // `// n` on the load of op: the kernel means n and reads op (or the comment is wrong).
        let f = family(&PTX.replace("[p+0];     // n", "[p+4];     // n"), WGSL);
        let errs = check_family(&f);
        assert!(errs.iter().any(|e| e.contains("reads `op u32 @4`, but the line says `n`")), "{errs:#?}");
        // The register's name counts when there is no comment; a word that names no field does not.
        let f = family(&PTX.replace("%r2, [p+4];", "%alpha, [p+4];"), WGSL);
        assert!(check_family(&f).iter().any(|e| e.contains("but the line says `alpha`")));
        let f = family(&PTX.replace("[p+0];     // n", "[p+0];     // N, the count"), WGSL);
        assert!(check_family(&f).is_empty());
    }

    #[test]
    fn a_ptx_block_size_unlike_its_header_is_caught() {
        let f = family(&PTX.replace("p[16]", "p[32]"), WGSL);
        let errs = check_family(&f);
        assert!(errs.iter().any(|e| e.contains("declares p[32] but its header documents 16 bytes")), "{errs:#?}");
    }

    #[test]
    fn a_header_list_that_does_not_tile_its_block_is_caught() {
        let f = family(&PTX.replace("beta f32 @12", "beta f32 @16"), WGSL);
        let errs = check_family(&f);
        assert!(errs.iter().any(|e| e.contains("should be at offset 12")), "{errs:#?}");
        assert!(errs.iter().any(|e| e.contains("the fields end at byte 20, the block has 16")), "{errs:#?}");
    }

    #[test]
    fn a_wgsl_struct_unlike_the_ptx_is_caught() {
        // Fields swapped in WGSL: the PTX/Rust order is n, op.
        let f = family(PTX, &WGSL.replace("n: u32, op: u32", "op: u32, n: u32"));
        assert!(check_family(&f)
            .iter()
            .any(|e| e.contains("field 0: PTX header `n u32 @0`, WGSL struct Params `op u32 @0`")));
        // A vec4 after a scalar is aligned to 16 by WGSL: offsets and size move, which Rust would not do.
        let f = family(PTX, &WGSL.replace("beta: f32 }", "beta: f32, v: vec4<u32> }"));
        let w = &f.wgsl[0].layout;
        assert_eq!((w.fields[4].offset, w.size), (16, 32));
        assert!(check_family(&f).iter().any(|e| e.contains("size: PTX header 16 bytes, WGSL struct Params 32 bytes")));
    }

    #[test]
    fn wgsl_arrays_are_words_and_keywords_are_renamed() {
        let src = "struct P { n: u32, npass: u32, pad0: u32, pad1: u32, shape: array<vec4<u32>, 2> }\n\
                   @group(0) @binding(0) var<uniform> q: P;\n@compute @workgroup_size(1) fn e() { let a = q.shape[1][2]; }";
        let w = parse_wgsl(src).unwrap();
        assert_eq!(w[0].layout.size, 48);
        assert_eq!(w[0].layout.fields[4], Field { name: "shape".into(), ty: Scalar::U32, count: 8, offset: 16 });
        let r = rust(&[
            ("n", Scalar::U32, 1),
            ("pass", Scalar::U32, 1),
            ("pad0", Scalar::U32, 1),
            ("pad1", Scalar::U32, 1),
            ("shape", Scalar::U32, 8),
        ]);
        assert!(compare_layouts("rust", &r, "wgsl", &w[0].layout).is_empty());
        assert!(parse_wgsl(&src.replace("vec4<u32>", "vec3<u32>")).unwrap_err().contains("not packed words"));
    }

    #[test]
    fn wgsl_entries_find_their_own_uniform() {
        // Two entries with two structs, one of them read only through a helper.
        let src = "struct A { n: u32, v: f32, pad0: u32, pad1: u32 }\n@group(0) @binding(0) var<uniform> a: A;\n\
                   struct B { m: u32, k: u32, j: u32, i: u32 }\n@group(0) @binding(0) var<uniform> b: B;\n\
                   fn count() -> u32 { return b.m; }\n\
                   @compute @workgroup_size(1) fn one() { let x = a.v; }\n\
                   @compute @workgroup_size(1) fn two() { let y = count(); let z = y.a; }";
        let w = parse_wgsl(src).unwrap();
        assert_eq!(
            (w[0].entry.as_ref(), w[0].ty.as_ref(), w[1].entry.as_ref(), w[1].ty.as_ref()),
            ("one", "A", "two", "B")
        );
        assert!(parse_wgsl(&src.replace("let z = y.a;", "let z = a.n;")).unwrap_err().contains("several uniforms"));
        assert!(parse_wgsl(&src.replace("@binding(0) var<uniform> b", "@binding(3) var<uniform> b")).is_err());
    }

    #[test]
    fn entries_missing_from_one_file_are_caught() {
        let wgsl2 = format!("{WGSL}\n@compute @workgroup_size(1) fn k_bwd() {{ let n = p.n; }}");
        let errs = check_family(&family(PTX, &wgsl2));
        assert!(
            errs.iter().any(|e| e.contains("entry `k_bwd` is in the .wgsl file but not the .ptx file")),
            "{errs:#?}"
        );
    }

    #[test]
    fn malformed_headers_are_errors_not_silence() {
        assert!(parse_ptx(&PTX.replace("beta f32 @12.", "beta f32 @12")).unwrap_err().contains("closing period"));
        assert!(parse_ptx(&PTX.replace("@4,", "4,")).unwrap_err().contains("expected `@offset`"));
        assert!(parse_ptx(&PTX.replace("(16 bytes, u32)", "(16 bytes)")).unwrap_err().contains("no type"));
        assert!(parse_ptx(&PTX.replace("// Params", "// The params")).unwrap_err().contains("no `Params (...)` list"));
        assert!(parse_ptx(&PTX.replace(".align 4 .b8 p[16]", ".u32 n")).unwrap_err().contains("first parameter"));
        let scoped = PTX.replace("// Params", "// k_fwd(x), Params");
        assert_eq!(parse_ptx(&scoped).unwrap()[0].doc.size, 16);
        assert!(parse_ptx(&PTX.replace("// Params", "// other(x), Params")).is_err());
    }

    #[test]
    fn indexed_loads_must_start_at_an_array() {
        let ptx = "// Params (40 bytes, u32): n @0, shape[8] @4, pad @36.\n\
                   .visible .entry e(\n .param .align 4 .b8 p[40]\n)\n{\n mov.u64 %rd5, p;\n\
                   ld.param.u32 %r8, [%rd6+4];\n ret;\n}\n";
        let e = &parse_ptx(ptx).unwrap()[0];
        assert_eq!(e.loads[0], Load { offset: 4, ty: "u32".into(), indirect: true, label: "r8".into(), line: 7 });
        assert!(check_loads("e", e, &e.doc).is_empty());
        let e = &parse_ptx(&ptx.replace("+4]", "+8]")).unwrap()[0];
        assert!(check_loads("e", e, &e.doc)[0].contains("must start at an array field"));
    }
}
