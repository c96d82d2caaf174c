//! Decoder-only language-model backbones.
