//! A slab: dense `u32` slots with a free list and a generation per slot, so a stale handle
//! (a timer, a reservation id) can be recognised instead of touching a reused slot.

/// Marks "no slot" in intrusive links.
pub(crate) const NIL: u32 = u32::MAX;

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

impl<T> Slab<T> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Slab { slots: Vec::with_capacity(capacity), free: Vec::with_capacity(capacity) }
    }

    /// Stores `value`, returning its slot and the slot's generation.
    pub(crate) fn insert(&mut self, value: T) -> (u32, u32) {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.value = Some(value);
            (index, slot.generation)
        } else {
            let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 slots");
            self.slots.push(Slot { generation: 0, value: Some(value) });
            (index, 0)
        }
    }

    pub(crate) fn remove(&mut self, index: u32) -> T {
        let slot = &mut self.slots[index as usize];
        let value = slot.value.take().expect("removing a live slot");
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        value
    }

    /// The value in `index` if it is live and still of `generation`.
    pub(crate) fn get_live(&self, index: u32, generation: u32) -> Option<&T> {
        let slot = self.slots.get(index as usize)?;
        if slot.generation == generation { slot.value.as_ref() } else { None }
    }

    /// The value in `index` if it is live.
    pub(crate) fn get(&self, index: u32) -> Option<&T> {
        self.slots.get(index as usize)?.value.as_ref()
    }

    pub(crate) fn generation(&self, index: u32) -> u32 {
        self.slots[index as usize].generation
    }

    pub(crate) fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.value.as_ref().map(|v| (i as u32, v)))
    }
}

impl<T> std::ops::Index<u32> for Slab<T> {
    type Output = T;
    fn index(&self, index: u32) -> &T {
        self.slots[index as usize].value.as_ref().expect("live slot")
    }
}

impl<T> std::ops::IndexMut<u32> for Slab<T> {
    fn index_mut(&mut self, index: u32) -> &mut T {
        self.slots[index as usize].value.as_mut().expect("live slot")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_slot_gets_a_new_generation() {
        let mut slab = Slab::with_capacity(2);
        let (a, ga) = slab.insert("a");
        assert_eq!(slab.remove(a), "a");
        let (b, gb) = slab.insert("b");
        assert_eq!(a, b, "the freed slot is reused");
        assert_ne!(ga, gb);
        assert_eq!(slab.get_live(a, ga), None, "a stale handle sees nothing");
        assert_eq!(slab.get_live(b, gb), Some(&"b"));
        assert_eq!(slab.live(), 1);
    }
}
