//! Test helpers: the `test_device!` macro (one test body, one `#[test]` per device) and checks
//! shared by the networks' tests.

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

/// Asserts every layer's weights and biases (`named` in `(weight, bias)` pairs) lie within
/// PyTorch's default `nn.Linear` init bound `1 / sqrt(fan_in)`.
#[cfg(test)]
pub(crate) fn assert_pytorch_default_bounds(named: &[(String, candle_core::Var)]) {
    for layer in named.chunks(2) {
        let bound = 1.0 / (layer[0].1.dims()[1] as f32).sqrt();
        for (name, v) in layer {
            let xs = v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(xs.iter().all(|x| x.abs() <= bound), "{name}");
        }
    }
}
