//! The allocator of the `quorate` binary (`src/main.rs`), and of the bench that plans in
//! process as the binary does: mimalloc, through its C functions.

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// mimalloc, asked for a plain block whenever a plain block is aligned enough. Its
/// aligned calls (which the `mimalloc` crate makes for every allocation) serve a size
/// that is not a power of two, once the page at hand is used up, by taking a block
/// `align - 1` bytes larger, often of the next size class, and aligning inside it.
pub struct Mimalloc;

/// Whether a plain mimalloc block of `size` bytes is aligned to `align`: every block of
/// 16 bytes or more starts at a multiple of 16, every smaller one at a multiple of 8
/// (mimalloc's `MI_MAX_ALIGN_SIZE` and word size), as with the C library's `malloc`.
fn plain(size: usize, align: usize) -> bool {
    align <= 16 && align <= size
}

// SAFETY: every call hands mimalloc a size and, where the block must be aligned beyond
// what a plain block guarantees (`plain`), the alignment; `dealloc` and `realloc` are
// given only pointers these functions returned, which `mi_free` and `mi_realloc*` accept
// whichever call made them.
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            match plain(layout.size(), layout.align()) {
                true => mi_malloc(layout.size()),
                false => mi_malloc_aligned(layout.size(), layout.align()),
            }
        }
        .cast()
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            match plain(layout.size(), layout.align()) {
                true => mi_zalloc(layout.size()),
                false => mi_zalloc_aligned(layout.size(), layout.align()),
            }
        }
        .cast()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: see the impl.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let ptr = ptr.cast::<c_void>();
        // SAFETY: see the impl.
        unsafe {
            match plain(new_size, layout.align()) {
                true => mi_realloc(ptr, new_size),
                false => mi_realloc_aligned(ptr, new_size, layout.align()),
            }
        }
        .cast()
    }
}

#[cfg(test)]
mod tests {
    use super::{GlobalAlloc, Layout, Mimalloc};

    /// Every block is aligned as asked, plain or not, and keeps its bytes when it grows
    /// or shrinks.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_bytes() {
        let a = Mimalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in (1..200).chain([1_000, 1_024, 4_000, 70_000, 300_000]) {
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // SAFETY: a layout of non-zero size; each block is freed once, by the
                // allocator that made it.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null() && p.align_offset(align) == 0, "{size} {align}");
                    p.write_bytes(0xa5, size);
                    let grown = size * 3 + 5;
                    let q = a.realloc(p, layout, grown);
                    assert_eq!(q.align_offset(align), 0, "grown {size} {align}");
                    assert!((0..size).all(|i| *q.add(i) == 0xa5), "{size} {align}");
                    let shrunk = size.div_ceil(2);
                    let r = a.realloc(q, Layout::from_size_align_unchecked(grown, align), shrunk);
                    assert_eq!(r.align_offset(align), 0, "shrunk {size} {align}");
                    assert!((0..shrunk).all(|i| *r.add(i) == 0xa5), "{size} {align}");
                    a.dealloc(r, Layout::from_size_align_unchecked(shrunk, align));
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z.align_offset(align), 0, "zeroed {size} {align}");
                    assert!((0..size).all(|i| *z.add(i) == 0), "{size} {align}");
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
