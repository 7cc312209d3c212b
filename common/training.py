"""The optimizer step that finetune.py's loops share."""
import torch


def optimizer_step(loss, model, optimizer, scheduler, max_grad_norm=1.0):
    """Backward, clip the gradient norm, step optimizer and schedule, clear gradients."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
