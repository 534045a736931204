// The media tunables live with every other tunable in config/ (`library.media`).
export * from '../../config/media.js';
