use burn::nn::conv::Conv2dConfig;
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use std::time::Instant;

fn conv_nhwc(x: Tensor<4>, w: Tensor<2>, k: usize) -> Tensor<4> {
    // x [B,H,W,C], w [k*k*C, out]
    let [b, h, wd, c] = x.dims();
    let (oh, ow) = (h - k + 1, wd - k + 1);
    let mut cols = Vec::new();
    for i in 0..k {
        for j in 0..k {
            cols.push(x.clone().slice([0..b, i..i + oh, j..j + ow, 0..c]));
        }
    }
    let cols = Tensor::cat(cols, 3).reshape([b * oh * ow, k * k * c]);
    let out = w.dims()[1];
    cols.matmul(w).reshape([b, oh, ow, out])
}

fn main() {
    let device = Device::flex().autodiff();
    let (b, c, h, out) = (128, 32, 26, 64);
    let x = Tensor::<4>::random([b, c, h, h], Distribution::Default, &device).require_grad();
    let conv = Conv2dConfig::new([c, out], [3, 3]).init(&device);
    for _ in 0..3 {
        let t = Instant::now();
        let y = conv.forward(x.clone());
        let f = t.elapsed();
        let g = y.sum().backward();
        let _ = conv.weight.grad(&g);
        println!("burn conv2d: fwd {:?} total {:?}", f, t.elapsed());
    }
    let xn = Tensor::<4>::random([b, h, h, c], Distribution::Default, &device).require_grad();
    let w = Tensor::<2>::random([9 * c, out], Distribution::Default, &device).require_grad();
    for _ in 0..3 {
        let t = Instant::now();
        let y = conv_nhwc(xn.clone(), w.clone(), 3);
        let f = t.elapsed();
        let g = y.sum().backward();
        let _ = w.grad(&g);
        let _ = xn.grad(&g);
        println!("slices+matmul: fwd {:?} total {:?}", f, t.elapsed());
    }
    let _ = TensorData::new(vec![0f32], [1]);
}
