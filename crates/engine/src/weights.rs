//! Weight sources: deterministic dummy weights (`--load-format dummy`) and safetensors
//! checkpoints (one file, or sharded with `model.safetensors.index.json`). Every tensor is
//! handed out as f32, whatever the stored dtype (f32, f16, bf16).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata};

use crate::error::EngineError;

/// `--load-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadFormat {
    /// safetensors when the model directory has them; presets use dummy weights.
    Auto,
    Dummy,
    Safetensors,
}

impl LoadFormat {
    pub fn parse(s: &str) -> Result<Self, EngineError> {
        match s {
            "auto" => Ok(Self::Auto),
            "dummy" => Ok(Self::Dummy),
            "safetensors" => Ok(Self::Safetensors),
            other => Err(EngineError::Config(format!(
                "--load-format '{other}' is not supported (auto, dummy, safetensors)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Dummy => "dummy",
            Self::Safetensors => "safetensors",
        }
    }
}

/// Where model tensors come from.
pub enum WeightSource {
    Dummy,
    Safetensors(SafetensorsCheckpoint),
}

impl WeightSource {
    /// A full tensor as f32, checked against the shape the model expects.
    pub fn load(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EngineError> {
        match self {
            WeightSource::Dummy => Ok(dummy_tensor(shape.iter().product())),
            WeightSource::Safetensors(ckpt) => ckpt.load(name, shape),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        match self {
            WeightSource::Dummy => true,
            WeightSource::Safetensors(ckpt) => ckpt.index.contains_key(name),
        }
    }
}

/// SGLang's `initialize_dummy_weights`: a fresh generator seeded 1234 for every tensor,
/// uniform in [-1e-3, 1e-3). Values therefore depend only on the element count, so every
/// tensor-parallel shard cut from the full tensor agrees with the unsharded model.
pub fn dummy_tensor(numel: usize) -> Vec<f32> {
    let mut state: u64 = 1234;
    (0..numel)
        .map(|_| {
            // SplitMix64: fast, portable and good enough for weights nobody reads.
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let unit = (z >> 40) as f32 / (1u64 << 24) as f32;
            -1e-3 + 2e-3 * unit
        })
        .collect()
}

struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    header_len: usize,
    metadata: Metadata,
}

/// A memory-mapped safetensors checkpoint.
pub struct SafetensorsCheckpoint {
    files: Vec<SafetensorsFile>,
    index: HashMap<String, usize>,
}

impl SafetensorsCheckpoint {
    /// Does `dir` hold safetensors weights?
    pub fn present(dir: &Path) -> bool {
        dir.join("model.safetensors").is_file()
            || dir.join("model.safetensors.index.json").is_file()
    }

    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        let index_path = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        let file_names: Vec<String> = if index_path.is_file() {
            let text = std::fs::read_to_string(&index_path).map_err(|e| EngineError::Io {
                path: index_path.clone(),
                source: e,
            })?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| EngineError::Weights {
                    path: index_path.clone(),
                    message: format!("invalid JSON: {e}"),
                })?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| EngineError::Weights {
                    path: index_path.clone(),
                    message: "missing object field 'weight_map'".into(),
                })?;
            let mut names: Vec<String> = map
                .values()
                .map(|f| {
                    f.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| EngineError::Weights {
                            path: index_path.clone(),
                            message: format!("weight_map value {f} is not a file name"),
                        })
                })
                .collect::<Result<_, _>>()?;
            names.sort();
            names.dedup();
            names
        } else if single.is_file() {
            vec!["model.safetensors".to_string()]
        } else {
            return Err(EngineError::Weights {
                path: dir.to_path_buf(),
                message: "no model.safetensors or model.safetensors.index.json \
                          (use --load-format dummy to run without weights)"
                    .into(),
            });
        };
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for name in file_names {
            let path = dir.join(&name);
            let file = File::open(&path).map_err(|e| EngineError::Io {
                path: path.clone(),
                source: e,
            })?;
            // SAFETY: the checkpoint is opened read-only; a file changed underneath a running
            // server is outside what any loader (transformers included) guards against.
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| EngineError::Io {
                path: path.clone(),
                source: e,
            })?;
            let (header_len, metadata) =
                safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| {
                    EngineError::Weights {
                        path: path.clone(),
                        message: format!("not a valid safetensors file: {e}"),
                    }
                })?;
            for tensor in metadata.tensors().keys() {
                index.insert(tensor.clone(), files.len());
            }
            files.push(SafetensorsFile {
                path,
                mmap,
                header_len,
                metadata,
            });
        }
        Ok(Self { files, index })
    }

    fn load(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EngineError> {
        let Some(&fi) = self.index.get(name) else {
            let where_ = self
                .files
                .iter()
                .map(|f| f.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(EngineError::Weights {
                path: PathBuf::from(where_),
                message: format!("tensor '{name}' is missing from the checkpoint"),
            });
        };
        let file = &self.files[fi];
        let info = file
            .metadata
            .info(name)
            .expect("indexed tensor has metadata");
        if info.shape != shape {
            return Err(EngineError::Weights {
                path: file.path.clone(),
                message: format!(
                    "tensor '{name}' has shape {:?}, the config implies {:?}",
                    info.shape, shape
                ),
            });
        }
        let base = 8 + file.header_len;
        let bytes = &file.mmap[base + info.data_offsets.0..base + info.data_offsets.1];
        let out = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(EngineError::Weights {
                    path: file.path.clone(),
                    message: format!(
                        "tensor '{name}' is stored as {other:?}; loupe reads F32, F16 and BF16"
                    ),
                });
            }
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_weights_depend_only_on_numel_and_stay_in_range() {
        let a = dummy_tensor(1000);
        let b = dummy_tensor(1000);
        assert_eq!(a, b);
        assert_eq!(&dummy_tensor(10)[..], &a[..10]);
        assert!(a.iter().all(|x| (-1e-3..1e-3).contains(x)));
        let mean: f32 = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 1e-4, "mean {mean}");
    }

    fn write_safetensors(path: &Path, tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            let start = data.len();
            data.extend_from_slice(bytes);
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
            );
        }
        let h = serde_json::to_vec(&header).unwrap();
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.extend_from_slice(&data);
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn reads_f32_f16_bf16_and_checks_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let vals = [1.5f32, -2.0, 0.25, 3.0];
        let f32b: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f16b: Vec<u8> = vals
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let bf16b: Vec<u8> = vals
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect();
        write_safetensors(
            &dir.path().join("model.safetensors"),
            &[
                ("a", "F32", vec![2, 2], f32b),
                ("b", "F16", vec![4], f16b),
                ("c", "BF16", vec![1, 4], bf16b),
            ],
        );
        let ckpt = SafetensorsCheckpoint::open(dir.path()).unwrap();
        assert_eq!(ckpt.load("a", &[2, 2]).unwrap(), vals);
        assert_eq!(ckpt.load("b", &[4]).unwrap(), vals);
        assert_eq!(ckpt.load("c", &[1, 4]).unwrap(), vals);
        let err = ckpt.load("a", &[4]).unwrap_err().to_string();
        assert!(err.contains("'a'") && err.contains("[2, 2]"), "{err}");
        let err = ckpt.load("zzz", &[1]).unwrap_err().to_string();
        assert!(err.contains("'zzz'") && err.contains("missing"), "{err}");
    }

    #[test]
    fn sharded_checkpoint_follows_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let one = 1.0f32.to_le_bytes().to_vec();
        let two = 2.0f32.to_le_bytes().to_vec();
        write_safetensors(
            &dir.path().join("part-1.safetensors"),
            &[("x", "F32", vec![1], one)],
        );
        write_safetensors(
            &dir.path().join("part-2.safetensors"),
            &[("y", "F32", vec![1], two)],
        );
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            r#"{"metadata": {}, "weight_map": {"x": "part-1.safetensors", "y": "part-2.safetensors"}}"#,
        )
        .unwrap();
        let ckpt = SafetensorsCheckpoint::open(dir.path()).unwrap();
        assert_eq!(ckpt.load("x", &[1]).unwrap(), [1.0]);
        assert_eq!(ckpt.load("y", &[1]).unwrap(), [2.0]);
    }

    #[test]
    fn garbage_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("model.safetensors"),
            b"not a safetensors file",
        )
        .unwrap();
        let err = SafetensorsCheckpoint::open(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("not a valid"),
            "{err}"
        );
    }
}
