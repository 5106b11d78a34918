//! The `test_device!` macro: one test body, one `#[test]` per device.

/// Generates a CPU test and, with the `cuda` feature, a CUDA test from one
/// `fn(&Device) -> rl_policies::Result<()>`, like candle's macro of the same name:
/// `test_device!(body, body_cpu, body_cuda);`.
#[macro_export]
#[doc(hidden)]
macro_rules! test_device {
    ($fn_name:ident, $test_cpu:ident, $test_cuda:ident) => {
        #[test]
        fn $test_cpu() -> $crate::Result<()> {
            $fn_name(&::candle_core::Device::Cpu)
        }

        #[cfg(feature = "cuda")]
        #[test]
        fn $test_cuda() -> $crate::Result<()> {
            $fn_name(&::candle_core::Device::new_cuda(0)?)
        }
    };
}
