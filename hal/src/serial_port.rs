//! Serial port settings and opening, shared by Modbus RTU and line devices.

use serde::{Deserialize, Serialize};
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use crate::HalError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SerialSettings {
    pub path: String,
    pub baud: u32,
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
    /// 5 to 8.
    pub data_bits: u8,
}

impl SerialSettings {
    /// 8N1, the most common setting on the devices we meet.
    pub fn new(path: impl Into<String>, baud: u32) -> Self {
        Self {
            path: path.into(),
            baud,
            parity: Parity::None,
            stop_bits: 1,
            data_bits: 8,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.baud == 0 {
            return Err("baud must be > 0".into());
        }
        if !matches!(self.stop_bits, 1 | 2) {
            return Err(format!("stop_bits must be 1 or 2, got {}", self.stop_bits));
        }
        if !(5..=8).contains(&self.data_bits) {
            return Err(format!("data_bits must be 5..=8, got {}", self.data_bits));
        }
        Ok(())
    }

    pub(crate) fn open(&self) -> Result<SerialStream, HalError> {
        let failed = |message: String| HalError::Connect {
            target: self.path.clone(),
            message,
        };
        self.validate().map_err(failed)?;
        let data_bits = match self.data_bits {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        };
        let stop_bits = if self.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        };
        let parity = match self.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        };
        tokio_serial::new(&self.path, self.baud)
            .data_bits(data_bits)
            .stop_bits(stop_bits)
            .parity(parity)
            .flow_control(tokio_serial::FlowControl::None)
            .open_native_async()
            .map_err(|e| failed(e.to_string()))
    }

    pub fn describe(&self) -> String {
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Even => 'E',
            Parity::Odd => 'O',
        };
        format!(
            "{}@{} {}{}{}",
            self.path, self.baud, self.data_bits, parity, self.stop_bits
        )
    }
}
