"""Write the two 1280x720 H.264 test videos (150 generated frames each) that run.yaml reads.

    python docs/bench/transfer/make_videos.py    # -> docs/bench/transfer/videos/cam0.mp4, cam1.mp4
"""

from pathlib import Path

from pipeline.scenes import SceneConfig, write_dataset

out = Path(__file__).resolve().parent / "videos"
for i, seed in enumerate((3001, 3002)):
    write_dataset(SceneConfig(seed=seed, width=1280, height=720, fps=25, num_frames=150), out, name=f"cam{i}")
print(f"wrote {out}")
