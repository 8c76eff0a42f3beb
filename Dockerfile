# nnunet-diffrefine: CPU image by default; for CUDA pass a CUDA-enabled Python base image, e.g.
#   docker build --build-arg BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime -t nnunet-diffrefine:cuda .
# Run with the nnU-Net folders mounted:
#   docker run --rm -v /data/nnUNet:/nnunet nnunet-diffrefine synth -d 970 --num-train 20 --num-test 5
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    nnUNet_raw=/nnunet/nnUNet_raw \
    nnUNet_preprocessed=/nnunet/nnUNet_preprocessed \
    nnUNet_results=/nnunet/nnUNet_results

WORKDIR /opt/nnunet-diffrefine
COPY pyproject.toml README.md ./
COPY nnunet_diffrefine ./nnunet_diffrefine
COPY trainers ./trainers
COPY plans ./plans
RUN python -m pip install --upgrade pip && python -m pip install . \
    && python -c "from nnunet_diffrefine.cli.env import trainer_folder; print(trainer_folder())" > /etc/nnunet_exttrainer \
    && printf '#!/bin/sh\nexport nnUNet_extTrainer="$(cat /etc/nnunet_exttrainer)"\nexec "$@"\n' > /usr/local/bin/with-nnunet-env \
    && chmod +x /usr/local/bin/with-nnunet-env

VOLUME ["/nnunet"]
WORKDIR /nnunet
ENTRYPOINT ["with-nnunet-env", "nnunet-diffrefine"]
CMD ["--help"]
