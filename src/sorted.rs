//! Sets kept as sorted Vecs. For the few names and ids init keeps in a set (refused files,
//! removed services, services already warned about, control clients), a sorted Vec does the job
//! of a BTreeSet or HashSet in far less code per element type: the binary's size budget
//! (docs/design.md, "Size").

use std::borrow::Borrow;

/// Inserts `x` unless it is there already: true when it was not.
pub fn insert<T: Ord>(set: &mut Vec<T>, x: T) -> bool {
    match set.binary_search(&x) {
        Ok(_) => false,
        Err(i) => {
            set.insert(i, x);
            true
        }
    }
}

/// Removes `x`: true when it was there.
pub fn remove<T: Borrow<Q>, Q: Ord + ?Sized>(set: &mut Vec<T>, x: &Q) -> bool {
    match set.binary_search_by(|e| e.borrow().cmp(x)) {
        Ok(i) => {
            set.remove(i);
            true
        }
        Err(_) => false,
    }
}

/// Whether `set` holds `x`.
pub fn contains<T: Borrow<Q>, Q: Ord + ?Sized>(set: &[T], x: &Q) -> bool {
    set.binary_search_by(|e| e.borrow().cmp(x)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sorted_vec_is_a_set() {
        let mut s: Vec<String> = Vec::new();
        assert!(insert(&mut s, "b".to_string()));
        assert!(insert(&mut s, "a".to_string()));
        assert!(!insert(&mut s, "b".to_string()));
        assert_eq!(s, ["a", "b"]);
        assert!(contains(&s, "a") && !contains(&s, "c"));
        assert!(remove(&mut s, "a") && !remove(&mut s, "a"));
        assert_eq!(s, ["b"]);
    }
}
