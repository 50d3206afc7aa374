//! Embeds every kernels/*.ptx and wgsl/*.wgsl into the crate as a generated registry
//! (`$OUT_DIR/kernels.rs`, included by src/kernels.rs), after checking them:
//! - every WGSL module is parsed and validated with naga; an error fails the build, naming file and line;
//! - every PTX file is assembled by ptxas for sm_70, sm_80 and sm_90 when a ptxas is found (env `PTXAS`,
//!   else `ptxas` on PATH); an error fails the build. Without ptxas: one warning, or a failure when
//!   `GFORGE_STRICT=1` (CI sets it so a missing ptxas can never pass silently);
//! - every family's parameter block is read from both files (src/kernels/abi.rs, shared with the crate): each PTX
//!   entry's declared `.param .align 4 .b8 p[SIZE]`, its `ld.param` loads and the header's `Params (...)` list,
//!   and the uniform struct each WGSL entry reads (its layout also checked against naga's). A family whose files
//!   disagree (entries, sizes, fields, a load outside its field) fails the build; the layouts go to
//!   `$OUT_DIR/kernel_abi.rs`, which the crate's ABI test compares with the Rust parameter structs.
#[path = "src/kernels/abi.rs"]
#[allow(dead_code)]
mod abi;

use std::borrow::Cow;
use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PTX_ARCHS: [&str; 3] = ["sm_70", "sm_80", "sm_90"];

fn sources(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e == ext)).collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

fn validate_wgsl(path: &Path) -> Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let src = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.display().to_string();
    let module = naga::front::wgsl::parse_str(&src).map_err(|e| e.emit_to_string_with_path(&src, &name))?;
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .map_err(|e| e.emit_to_string_with_path(&src, &name))?;
    Ok((module, info))
}

/// The uniform struct layouts that abi::parse_wgsl read from the text, against naga's own reading of the module:
/// the same entry points, each reading exactly the one uniform at @group(0) @binding(0) of that struct, whose
/// members have the same names and offsets and whose size is the same.
fn check_wgsl_with_naga(
    entries: &[abi::WgslEntry],
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
) -> Vec<String> {
    let mut errs = Vec::new();
    let names: Vec<&str> = module.entry_points.iter().map(|e| e.name.as_str()).collect();
    let parsed: Vec<&str> = entries.iter().map(|e| e.entry.as_ref()).collect();
    if names != parsed {
        errs.push(format!("entry points: naga reads {names:?}, the ABI parser {parsed:?}"));
    }
    for (i, ep) in module.entry_points.iter().enumerate() {
        let Some(e) = entries.iter().find(|e| e.entry == ep.name.as_str()) else { continue };
        let uses = info.get_entry_point(i);
        let uniforms: Vec<_> = module
            .global_variables
            .iter()
            .filter(|(h, g)| g.space == naga::AddressSpace::Uniform && !uses[*h].is_empty())
            .collect();
        let [(_, g)] = uniforms.as_slice() else {
            errs.push(format!("{}: naga finds {} uniforms read", ep.name, uniforms.len()));
            continue;
        };
        let ty = &module.types[g.ty];
        let at_zero = g.binding.as_ref().is_some_and(|b| (b.group, b.binding) == (0, 0));
        let naga::TypeInner::Struct { members, span } = &ty.inner else {
            errs.push(format!("{}: the uniform is not a struct", ep.name));
            continue;
        };
        let naga_fields: Vec<(String, u32)> =
            members.iter().map(|m| (m.name.clone().unwrap_or_default(), m.offset)).collect();
        let ours: Vec<(String, u32)> = e.layout.fields.iter().map(|f| (f.name.to_string(), f.offset)).collect();
        if !at_zero || ty.name.as_deref() != Some(e.ty.as_ref()) || naga_fields != ours || *span != e.layout.size {
            errs.push(format!(
                "{}: naga reads struct {:?} of {span} bytes {naga_fields:?} (at group 0 binding 0: {at_zero}), \
                 the ABI parser {} of {} bytes {ours:?}",
                ep.name, ty.name, e.ty, e.layout.size
            ));
        }
    }
    errs
}

/// Rust source for a layout, with borrowed strings and slices (a const of the crate's `kernels::abi` types).
fn layout_src(l: &abi::Layout) -> String {
    let fields: Vec<String> = l
        .fields
        .iter()
        .map(|f| {
            format!(
                "Field {{ name: Cow::Borrowed({:?}), ty: Scalar::{:?}, count: {}, offset: {} }}",
                f.name, f.ty, f.count, f.offset
            )
        })
        .collect();
    format!("Layout {{ size: {}, fields: Cow::Borrowed(&[{}]) }}", l.size, fields.join(", "))
}

fn family_src(f: &abi::FamilyAbi) -> String {
    let mut s =
        format!("    FamilyAbi {{\n        family: Cow::Borrowed({:?}),\n        ptx: Cow::Borrowed(&[\n", f.family);
    for e in f.ptx.iter() {
        let loads: Vec<String> = e
            .loads
            .iter()
            .map(|l| {
                format!(
                    "Load {{ offset: {}, ty: Cow::Borrowed({:?}), indirect: {}, label: Cow::Borrowed({:?}), line: {} }}",
                    l.offset, l.ty, l.indirect, l.label, l.line
                )
            })
            .collect();
        writeln!(
            s,
            "            PtxEntry {{ entry: Cow::Borrowed({:?}), param_bytes: {}, loads: Cow::Borrowed(&[{}]), doc: {} }},",
            e.entry,
            e.param_bytes,
            loads.join(", "),
            layout_src(&e.doc)
        )
        .unwrap();
    }
    s.push_str("        ]),\n        wgsl: Cow::Borrowed(&[\n");
    for e in f.wgsl.iter() {
        writeln!(
            s,
            "            WgslEntry {{ entry: Cow::Borrowed({:?}), ty: Cow::Borrowed({:?}), layout: {} }},",
            e.entry,
            e.ty,
            layout_src(&e.layout)
        )
        .unwrap();
    }
    s.push_str("        ]),\n    },\n");
    s
}

fn find_ptxas() -> Option<PathBuf> {
    if let Some(p) = env::var_os("PTXAS") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
    }
    env::var_os("PATH").and_then(|paths| env::split_paths(&paths).map(|d| d.join("ptxas")).find(|p| p.is_file()))
}

fn assemble_ptx(ptxas: &Path, path: &Path, out_dir: &Path) -> Result<(), String> {
    for arch in PTX_ARCHS {
        let cubin = out_dir.join(format!("{}.{arch}.cubin", stem(path)));
        let out = Command::new(ptxas)
            .arg(format!("-arch={arch}"))
            .arg(path)
            .arg("-o")
            .arg(&cubin)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", ptxas.display()))?;
        if !out.status.success() {
            return Err(format!(
                "ptxas -arch={arch} rejected {}:\n{}{}",
                path.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=wgsl");
    println!("cargo:rerun-if-changed=src/kernels/abi.rs");
    println!("cargo:rerun-if-env-changed=PTXAS");
    println!("cargo:rerun-if-env-changed=GFORGE_STRICT");
    println!("cargo:rerun-if-env-changed=PATH");
    let strict = env::var("GFORGE_STRICT").is_ok_and(|v| v == "1");

    let wgsl = sources(&root.join("wgsl"), "wgsl");
    let ptx = sources(&root.join("kernels"), "ptx");
    let mut errors = Vec::new();

    let mut naga_modules = std::collections::BTreeMap::new();
    for f in &wgsl {
        println!("cargo:rerun-if-changed={}", f.display());
        match validate_wgsl(f) {
            Ok(m) => {
                naga_modules.insert(stem(f), m);
            }
            Err(e) => errors.push(format!("invalid WGSL in {}:\n{e}", f.display())),
        }
    }

    // The parameter blocks of every family, as both files declare them.
    let mut families = Vec::new();
    for f in &ptx {
        let family = stem(f);
        let w = root.join("wgsl").join(format!("{family}.wgsl"));
        let read = |p: &Path| fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        let parsed =
            read(f).and_then(|s| abi::parse_ptx(&s).map_err(|e| format!("{}: {e}", f.display()))).and_then(|p| {
                let w_src = read(&w)?;
                Ok((p, abi::parse_wgsl(&w_src).map_err(|e| format!("{}: {e}", w.display()))?))
            });
        match parsed {
            Ok((p, w_entries)) => {
                let fam = abi::FamilyAbi {
                    family: Cow::Owned(family.clone()),
                    ptx: Cow::Owned(p),
                    wgsl: Cow::Owned(w_entries),
                };
                let mut errs = abi::check_family(&fam);
                if let Some((module, info)) = naga_modules.get(&family) {
                    errs.extend(
                        check_wgsl_with_naga(&fam.wgsl, module, info)
                            .into_iter()
                            .map(|e| format!("{}: {e}", w.display())),
                    );
                }
                errors.extend(errs.into_iter().map(|e| format!("kernel ABI: {e}")));
                families.push(fam);
            }
            Err(e) => errors.push(format!("kernel ABI: {e}")),
        }
    }
    for w in &wgsl {
        if !ptx.iter().any(|p| stem(p) == stem(w)) {
            errors.push(format!("kernel ABI: {} has no kernels/{}.ptx", w.display(), stem(w)));
        }
    }
    match find_ptxas() {
        Some(ptxas) => {
            for f in &ptx {
                println!("cargo:rerun-if-changed={}", f.display());
                if let Err(e) = assemble_ptx(&ptxas, f, &out_dir) {
                    errors.push(e);
                }
            }
        }
        None if strict => errors.push("GFORGE_STRICT=1 but no ptxas found (set PTXAS or put ptxas on PATH)".into()),
        None => {
            println!("cargo:warning=no ptxas found (set PTXAS or PATH): kernels/*.ptx embedded without being assembled")
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}\n");
        }
        panic!("{} error(s) in the kernel files: {}", errors.len(), errors.join("\n").lines().next().unwrap_or(""));
    }

    let mut reg = String::from("// Generated by build.rs: (family, source) for every kernel file.\n");
    for (name, files) in [("PTX", &ptx), ("WGSL", &wgsl)] {
        writeln!(reg, "pub const {name}: &[(&str, &str)] = &[").unwrap();
        for f in files.iter() {
            writeln!(reg, "    ({:?}, include_str!({:?})),", stem(f), f.display().to_string()).unwrap();
        }
        reg.push_str("];\n");
    }
    fs::write(out_dir.join("kernels.rs"), reg).unwrap();

    let mut abi_src = String::from(
        "// Generated by build.rs from kernels/*.ptx and wgsl/*.wgsl (src/kernels/abi.rs): every family's parameter blocks.\n\
         pub const FAMILIES: &[FamilyAbi] = &[\n",
    );
    for f in &families {
        abi_src.push_str(&family_src(f));
    }
    abi_src.push_str("];\n");
    fs::write(out_dir.join("kernel_abi.rs"), abi_src).unwrap();
}
