use super::*;

#[test]
fn dumps_the_kernel_btf() {
    let Ok(data) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        return;
    };
    let btf = Btf::parse(&data).unwrap();
    let start = std::time::Instant::now();
    let header = to_c_header(&btf).unwrap();
    eprintln!("{} bytes in {:?}", header.len(), start.elapsed());
    if let Ok(path) = std::env::var("PYAYA_DUMP_TO") {
        std::fs::write(path, &header).unwrap();
    }
}
