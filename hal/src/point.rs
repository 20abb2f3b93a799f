//! Named I/O points: where a value lives, how its registers turn into a
//! number and back, and the value type scripts see.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::modbus::{Table, UnitId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Bool,
    U16,
    I16,
    U32,
    I32,
    F32,
    U64,
    I64,
    F64,
}

impl DataType {
    /// Registers occupied in a register table (bits count as one entry).
    pub fn words(self) -> u16 {
        match self {
            Self::Bool | Self::U16 | Self::I16 => 1,
            Self::U32 | Self::I32 | Self::F32 => 2,
            Self::U64 | Self::I64 | Self::F64 => 4,
        }
    }
}

/// Order of the two bytes inside each 16-bit register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ByteOrder {
    #[default]
    Big,
    Little,
}

/// Order of registers in a multi-register value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    /// Most significant register at the lowest address (Modbus convention).
    #[default]
    HighFirst,
    LowFirst,
}

/// A point's value as scripts see it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Self::Bool(b) => f64::from(u8::from(b)),
            Self::Int(i) => i as f64,
            Self::UInt(u) => u as f64,
            Self::Float(f) => f,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::UInt(u) => write!(f, "{u}"),
            Self::Float(x) => write!(f, "{x}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error("expected {expected} registers, got {got}")]
    WrongLength { expected: u16, got: usize },
    #[error("value {value} does not fit {data_type:?} after scaling")]
    OutOfRange { value: String, data_type: DataType },
    #[error("{value} is not a valid value for a {data_type:?} point")]
    WrongType { value: String, data_type: DataType },
}

/// How a point's raw registers map to an engineering value:
/// `value = raw * scale + offset`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Encoding {
    pub data_type: DataType,
    pub byte_order: ByteOrder,
    pub word_order: WordOrder,
    pub scale: f64,
    pub offset: f64,
}

impl Encoding {
    pub fn plain(data_type: DataType) -> Self {
        Self {
            data_type,
            byte_order: ByteOrder::Big,
            word_order: WordOrder::HighFirst,
            scale: 1.0,
            offset: 0.0,
        }
    }

    fn is_scaled(&self) -> bool {
        self.scale != 1.0 || self.offset != 0.0
    }

    pub fn decode_bit(&self, bit: bool) -> Value {
        if self.is_scaled() {
            Value::Float(f64::from(u8::from(bit)) * self.scale + self.offset)
        } else {
            Value::Bool(bit)
        }
    }

    /// Decodes registers in wire order.
    pub fn decode_words(&self, words: &[u16]) -> Result<Value, CodecError> {
        let n = self.data_type.words();
        if words.len() != usize::from(n) {
            return Err(CodecError::WrongLength {
                expected: n,
                got: words.len(),
            });
        }
        let bytes = self.canonical_bytes(words);
        let raw = match self.data_type {
            DataType::Bool => Value::Bool(words[0] != 0),
            DataType::U16 => Value::UInt(u64::from(u16::from_be_bytes([bytes[0], bytes[1]]))),
            DataType::I16 => Value::Int(i64::from(i16::from_be_bytes([bytes[0], bytes[1]]))),
            DataType::U32 => Value::UInt(u64::from(u32::from_be_bytes(arr(&bytes)))),
            DataType::I32 => Value::Int(i64::from(i32::from_be_bytes(arr(&bytes)))),
            DataType::F32 => Value::Float(widen_f32(f32::from_be_bytes(arr(&bytes)))),
            DataType::U64 => Value::UInt(u64::from_be_bytes(arr(&bytes))),
            DataType::I64 => Value::Int(i64::from_be_bytes(arr(&bytes))),
            DataType::F64 => Value::Float(f64::from_be_bytes(arr(&bytes))),
        };
        if self.is_scaled() {
            Ok(Value::Float(raw.as_f64() * self.scale + self.offset))
        } else {
            Ok(raw)
        }
    }

    /// Registers (in wire order) in a canonical big-endian byte string.
    fn canonical_bytes(&self, words: &[u16]) -> Vec<u8> {
        let mut ordered: Vec<u16> = words.to_vec();
        if self.word_order == WordOrder::LowFirst {
            ordered.reverse();
        }
        ordered
            .iter()
            .flat_map(|w| match self.byte_order {
                ByteOrder::Big => w.to_be_bytes(),
                ByteOrder::Little => w.to_le_bytes(),
            })
            .collect()
    }

    fn wire_words(&self, bytes: &[u8]) -> Vec<u16> {
        let mut words: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|pair| match self.byte_order {
                ByteOrder::Big => u16::from_be_bytes([pair[0], pair[1]]),
                ByteOrder::Little => u16::from_le_bytes([pair[0], pair[1]]),
            })
            .collect();
        if self.word_order == WordOrder::LowFirst {
            words.reverse();
        }
        words
    }

    /// Turns an engineering value into a coil state.
    pub fn encode_bit(&self, value: Value) -> Result<bool, CodecError> {
        match value {
            Value::Bool(b) if !self.is_scaled() => Ok(b),
            other => {
                let raw = self.unscale(other);
                if raw == 0.0 {
                    Ok(false)
                } else if raw == 1.0 {
                    Ok(true)
                } else {
                    Err(CodecError::WrongType {
                        value: other.to_string(),
                        data_type: DataType::Bool,
                    })
                }
            }
        }
    }

    fn unscale(&self, value: Value) -> f64 {
        (value.as_f64() - self.offset) / self.scale
    }

    /// Turns an engineering value into registers in wire order.
    pub fn encode_words(&self, value: Value) -> Result<Vec<u16>, CodecError> {
        let dt = self.data_type;
        let out_of_range = || CodecError::OutOfRange {
            value: value.to_string(),
            data_type: dt,
        };
        let bytes: Vec<u8> = if dt == DataType::Bool {
            let bit = self.encode_bit(value)?;
            u16::from(bit).to_be_bytes().to_vec()
        } else if matches!(dt, DataType::F32 | DataType::F64) {
            let x = if self.is_scaled() {
                self.unscale(value)
            } else {
                value.as_f64()
            };
            if dt == DataType::F32 {
                (x as f32).to_be_bytes().to_vec()
            } else {
                x.to_be_bytes().to_vec()
            }
        } else {
            let int = self.integer_raw(value).ok_or_else(out_of_range)?;
            match dt {
                DataType::U16 => u16::try_from(int)
                    .map_err(|_| out_of_range())?
                    .to_be_bytes()
                    .to_vec(),
                DataType::I16 => i16::try_from(int)
                    .map_err(|_| out_of_range())?
                    .to_be_bytes()
                    .to_vec(),
                DataType::U32 => u32::try_from(int)
                    .map_err(|_| out_of_range())?
                    .to_be_bytes()
                    .to_vec(),
                DataType::I32 => i32::try_from(int)
                    .map_err(|_| out_of_range())?
                    .to_be_bytes()
                    .to_vec(),
                DataType::U64 => u64::try_from(int)
                    .map_err(|_| out_of_range())?
                    .to_be_bytes()
                    .to_vec(),
                _ => i64::try_from(int)
                    .map_err(|_| out_of_range())?
                    .to_be_bytes()
                    .to_vec(),
            }
        };
        Ok(self.wire_words(&bytes))
    }

    /// The integer to store, exact for unscaled integers (an f64 would
    /// lose precision above 2^53), rounded for scaled or float input.
    fn integer_raw(&self, value: Value) -> Option<i128> {
        if !self.is_scaled() {
            match value {
                Value::Int(i) => return Some(i128::from(i)),
                Value::UInt(u) => return Some(i128::from(u)),
                Value::Bool(b) => return Some(i128::from(u8::from(b))),
                Value::Float(_) => {}
            }
        }
        let x = self.unscale(value).round();
        // i128 covers every target type; NaN/inf are never valid raw values.
        if x.is_finite() && x.abs() < 1.8e19 {
            Some(x as i128)
        } else {
            None
        }
    }
}

/// Widens through the shortest decimal form so 0.1f32 reads as 0.1, not
/// 0.10000000149011612, which would also defeat exact-match deadbands.
fn widen_f32(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

fn arr<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// Everything needed to poll and write one named point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointSpec {
    pub tag: String,
    /// Name of the bus the device hangs on.
    pub bus: String,
    pub unit: UnitId,
    pub table: Table,
    pub address: u16,
    pub encoding: Encoding,
    pub period: Duration,
    /// Minimum change (in engineering units) that produces a change record.
    pub deadband: f64,
    pub read_only: bool,
}

impl PointSpec {
    /// Entries the point occupies in its table.
    pub fn width(&self) -> u16 {
        if self.table.is_bits() {
            1
        } else {
            self.encoding.data_type.words()
        }
    }

    /// Checks what hal itself relies on; config loaders add their own,
    /// better-located messages on top.
    pub fn validate(&self) -> Result<(), String> {
        if self.table.is_bits() && self.encoding.data_type != DataType::Bool {
            return Err(format!(
                "{}: {:?} table holds bits; data type must be bool",
                self.tag, self.table
            ));
        }
        if u32::from(self.address) + u32::from(self.width()) > 0x1_0000 {
            return Err(format!("{}: address beyond 65535", self.tag));
        }
        if self.period.is_zero() {
            return Err(format!("{}: poll period must be > 0", self.tag));
        }
        if !self.encoding.scale.is_finite() || self.encoding.scale == 0.0 {
            return Err(format!("{}: scale must be finite and non-zero", self.tag));
        }
        if !self.encoding.offset.is_finite() {
            return Err(format!("{}: offset must be finite", self.tag));
        }
        if self.deadband.is_nan() || self.deadband < 0.0 {
            return Err(format!("{}: deadband must be >= 0", self.tag));
        }
        Ok(())
    }

    /// Discrete inputs and input registers are read-only whatever the
    /// config says.
    pub fn writable(&self) -> bool {
        !self.read_only && self.table.is_writable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(dt: DataType, bo: ByteOrder, wo: WordOrder) -> Encoding {
        Encoding {
            byte_order: bo,
            word_order: wo,
            ..Encoding::plain(dt)
        }
    }

    #[test]
    fn f32_in_all_four_orders() {
        // 1.5f32 = 0x3FC0_0000
        let cases = [
            (ByteOrder::Big, WordOrder::HighFirst, [0x3FC0, 0x0000]),
            (ByteOrder::Big, WordOrder::LowFirst, [0x0000, 0x3FC0]),
            (ByteOrder::Little, WordOrder::HighFirst, [0xC03F, 0x0000]),
            (ByteOrder::Little, WordOrder::LowFirst, [0x0000, 0xC03F]),
        ];
        for (bo, wo, words) in cases {
            let e = enc(DataType::F32, bo, wo);
            assert_eq!(
                e.decode_words(&words),
                Ok(Value::Float(1.5)),
                "{bo:?} {wo:?}"
            );
            assert_eq!(e.encode_words(Value::Float(1.5)), Ok(words.to_vec()));
        }
    }

    #[test]
    fn signed_and_wide_integers_round_trip() {
        let cases = [
            (DataType::I16, Value::Int(-2)),
            (DataType::U16, Value::UInt(65535)),
            (DataType::I32, Value::Int(-100_000)),
            (DataType::U32, Value::UInt(4_000_000_000)),
            (DataType::I64, Value::Int(i64::MIN + 1)),
            (DataType::U64, Value::UInt(u64::MAX - 1)),
            (DataType::F64, Value::Float(-0.125)),
        ];
        for (dt, v) in cases {
            for wo in [WordOrder::HighFirst, WordOrder::LowFirst] {
                let e = enc(dt, ByteOrder::Big, wo);
                let words = e.encode_words(v).expect("encode");
                assert_eq!(words.len(), usize::from(dt.words()));
                assert_eq!(e.decode_words(&words), Ok(v), "{dt:?} {wo:?}");
            }
        }
        let e = Encoding::plain(DataType::I16);
        assert_eq!(e.decode_words(&[0xFFFE]), Ok(Value::Int(-2)));
    }

    #[test]
    fn scaling_applies_on_read_and_reverses_on_write() {
        let e = Encoding {
            scale: 0.1,
            offset: -40.0,
            ..Encoding::plain(DataType::U16)
        };
        assert_eq!(e.decode_words(&[650]), Ok(Value::Float(650.0 * 0.1 - 40.0)));
        assert_eq!(e.encode_words(Value::Float(25.0)), Ok(vec![650]));
    }

    #[test]
    fn out_of_range_write_is_refused() {
        let e = Encoding::plain(DataType::U16);
        assert!(matches!(
            e.encode_words(Value::Int(70_000)),
            Err(CodecError::OutOfRange { .. })
        ));
        assert!(matches!(
            e.encode_words(Value::Int(-1)),
            Err(CodecError::OutOfRange { .. })
        ));
        assert!(e.encode_words(Value::Float(f64::NAN)).is_err());
    }

    #[test]
    fn wrong_register_count_is_an_error() {
        let e = Encoding::plain(DataType::U32);
        assert!(matches!(
            e.decode_words(&[1]),
            Err(CodecError::WrongLength {
                expected: 2,
                got: 1
            })
        ));
    }
}
