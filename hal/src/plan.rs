//! Turns a list of points into as few read requests as possible.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::modbus::{Table, UnitId};
use crate::point::PointSpec;

/// One read request and the points it feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBlock {
    pub bus: String,
    pub unit: UnitId,
    pub table: Table,
    pub start: u16,
    pub count: u16,
    pub period: Duration,
    /// Indices into the point list.
    pub members: Vec<usize>,
}

/// Groups points of the same bus, unit, table and period whose addresses
/// touch or overlap. Gaps are never bridged: reading an unmapped address
/// can make the whole request fail with "illegal data address".
pub fn plan_reads(points: &[PointSpec], max_registers: u16, max_bits: u16) -> Vec<ReadBlock> {
    let mut groups: BTreeMap<(&str, UnitId, Table, Duration), Vec<usize>> = BTreeMap::new();
    for (i, p) in points.iter().enumerate() {
        groups
            .entry((p.bus.as_str(), p.unit, p.table, p.period))
            .or_default()
            .push(i);
    }
    let mut blocks = Vec::new();
    for ((bus, unit, table, period), mut members) in groups {
        members.sort_by_key(|&i| (points[i].address, points[i].width()));
        let limit = u32::from(
            if table.is_bits() {
                max_bits
            } else {
                max_registers
            }
            .max(1),
        );
        let mut current: Option<(u32, u32, Vec<usize>)> = None;
        for i in members {
            let start = u32::from(points[i].address);
            let end = start + u32::from(points[i].width());
            current = match current {
                Some((b_start, b_end, mut list))
                    if start <= b_end && end.max(b_end) - b_start <= limit =>
                {
                    list.push(i);
                    Some((b_start, end.max(b_end), list))
                }
                other => {
                    if let Some(done) = other {
                        blocks.push(block(bus, unit, table, period, done));
                    }
                    Some((start, end, vec![i]))
                }
            };
        }
        if let Some(done) = current {
            blocks.push(block(bus, unit, table, period, done));
        }
    }
    blocks
}

fn block(
    bus: &str,
    unit: UnitId,
    table: Table,
    period: Duration,
    (start, end, members): (u32, u32, Vec<usize>),
) -> ReadBlock {
    // Both bounds come from u16 addresses plus widths that validate()
    // keeps within 65536, and a block never exceeds 2000 entries.
    ReadBlock {
        bus: bus.to_owned(),
        unit,
        table,
        start: u16::try_from(start).unwrap_or(u16::MAX),
        count: u16::try_from(end - start).unwrap_or(u16::MAX),
        period,
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::{DataType, Encoding};

    fn point(tag: &str, table: Table, address: u16, dt: DataType) -> PointSpec {
        PointSpec {
            tag: tag.into(),
            bus: "b".into(),
            unit: 1,
            table,
            address,
            encoding: Encoding::plain(dt),
            period: Duration::from_millis(100),
            deadband: 0.0,
            read_only: false,
        }
    }

    #[test]
    fn contiguous_registers_share_one_request() {
        let points = vec![
            point("a", Table::Holding, 0, DataType::U16),
            point("b", Table::Holding, 1, DataType::F32),
            point("c", Table::Holding, 3, DataType::U16),
            point("gap", Table::Holding, 10, DataType::U16),
            point("coil", Table::Coil, 0, DataType::Bool),
        ];
        let blocks = plan_reads(&points, 125, 2000);
        assert_eq!(blocks.len(), 3);
        let holding: Vec<_> = blocks
            .iter()
            .filter(|b| b.table == Table::Holding)
            .collect();
        assert_eq!((holding[0].start, holding[0].count), (0, 4));
        assert_eq!(holding[0].members, vec![0, 1, 2]);
        assert_eq!((holding[1].start, holding[1].count), (10, 1));
    }

    #[test]
    fn block_size_is_bounded() {
        let points: Vec<_> = (0..300)
            .map(|i| point(&format!("p{i}"), Table::Input, i, DataType::U16))
            .collect();
        let blocks = plan_reads(&points, 125, 2000);
        let counts: Vec<u16> = blocks.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![125, 125, 50]);
    }

    #[test]
    fn different_periods_or_units_are_not_merged() {
        let mut a = point("a", Table::Holding, 0, DataType::U16);
        let mut b = point("b", Table::Holding, 1, DataType::U16);
        b.period = Duration::from_secs(1);
        assert_eq!(plan_reads(&[a.clone(), b], 125, 2000).len(), 2);
        let mut c = point("c", Table::Holding, 1, DataType::U16);
        c.unit = 2;
        a.unit = 1;
        assert_eq!(plan_reads(&[a, c], 125, 2000).len(), 2);
    }
}
